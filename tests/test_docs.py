"""The README stays short, and the links of the README and docs/ lead somewhere: every relative link names a file
or folder that exists, and every #anchor a heading of the page it points to (GitHub's heading ids)."""

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
CODE_SPAN = re.compile(r"`(?:[^`\n]|\n(?!\n))*`")  # a code span may wrap, within a paragraph
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$", re.M)


def _prose(text: str) -> str:
    """The text without fenced code blocks (a `# comment` in a bash block is no heading, `[x](y)` in code no link)."""
    return FENCE.sub("", text)


def _links(path: Path) -> list[str]:
    return LINK.findall(CODE_SPAN.sub("", _prose(path.read_text())))


def _slug(heading: str) -> str:
    """GitHub's heading id: markdown links reduced to their text, lower case, punctuation dropped, spaces → '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    kept = (c for c in text if c.isalnum() or c in " -_" or unicodedata.category(c).startswith("M"))
    return "".join(kept).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for _, heading in HEADING.findall(_prose(path.read_text())):
        slug = _slug(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def test_readme_is_at_most_12_kb():
    size = len(README.read_bytes())
    assert size <= 12_000, f"README.md is {size:,} bytes; move detail to docs/"


def test_docs_exist():
    assert DOCS.is_dir() and list(DOCS.glob("*.md"))


def _broken_links(page: Path) -> list[str]:
    broken = []
    for target in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        location, _, anchor = target.partition("#")
        dest = (page.parent / location).resolve() if location else page
        if not dest.exists():
            broken.append(f"{target} (no such file: {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest})")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {dest.name})")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files(page: Path):
    broken = _broken_links(page)
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_link_check_finds_broken_links(tmp_path: Path):
    (tmp_path / "other.md").write_text("# Other page\n\n## `ticketpack demo`\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md) [ok](other.md#ticketpack-demo) [ok](#a-heading) [web](https://example.com/x.md)\n"
        "`--only\nwrapped` [gone](missing.md) ![img](missing.png) [bad anchor](other.md#nope)\n\n"
        "## A heading\n\n```bash\n# not a heading [in code](missing-too.md)\n```\n")
    assert _broken_links(page) == [
        "missing.md (no such file: " + str(tmp_path.resolve() / "missing.md") + ")",
        "missing.png (no such file: " + str(tmp_path.resolve() / "missing.png") + ")",
        "other.md#nope (no heading #nope in other.md)",
    ]


def test_every_docs_page_is_linked_from_the_readme_or_the_docs_index():
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in _links(README)}
    linked |= {(DOCS / t.partition("#")[0]).resolve() for t in _links(DOCS / "README.md")}
    orphans = [p.name for p in sorted(DOCS.glob("*.md")) if p.name != "README.md" and p.resolve() not in linked]
    assert not orphans, f"docs pages no one links to: {orphans}"


def test_gpu_install_is_documented():
    """The README says where a GPU user finds the commands, and that page has them."""
    readme = README.read_text()
    assert "docs/gpu.md" in readme and "onnxruntime-gpu" in readme
    gpu = (DOCS / "gpu.md").read_text()
    assert "https://download.pytorch.org/whl/cu" in gpu
    assert "pip uninstall -y onnxruntime && pip install onnxruntime-gpu" in gpu


def test_slug_matches_githubs_heading_ids():
    assert _slug("`ticketpack demo`") == "ticketpack-demo"
    assert _slug("Export: are exported tickets smaller and faster?") == "export-are-exported-tickets-smaller-and-faster"
    assert _slug("Tickets under distributional shift (Desai, Zhan & Aly 2019)") == (
        "tickets-under-distributional-shift-desai-zhan--aly-2019")
