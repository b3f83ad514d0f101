"""The docs' Python runs as written: every ```python block of the README, docs/ and examples/ pages, in page order,
in one namespace per page, in a fresh temporary working directory per page (so a relative path such as
`tickets/demo` is created there), in a subprocess with a time limit. A failure names the page and the line of the
block, and the traceback points into the markdown file.

A block that needs what the test cannot have (`../shared` data, an optional extra, a GPU) is marked by an HTML
comment on the line before its fence, `<!-- skip-test: the reason -->`; it is reported as skipped with that reason.

Run one page by hand in a scratch directory: `cd "$(mktemp -d)" && python ~/ticketpack/tests/test_docs_run.py
~/ticketpack/docs/design.md` (the blocks write there)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
         *sorted(p for p in (ROOT / "examples").glob("**/*.md") if "node_modules" not in p.parts)]  # npm's, not ours
LANGUAGES = {"python", "py", "python3"}
PAGE_TIMEOUT_S = 150  # each page's blocks train tiny models: seconds, not minutes

OPEN = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)[^`]*$")
SKIP = re.compile(r"^\s*<!--\s*skip-test:\s*(?P<reason>.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    skip: str | None  # the reason, where `<!-- skip-test: reason -->` precedes the fence
    fence: str = "```"
    closed: bool = True  # False: the block ran to the end of the page

    @property
    def where(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page
        return f"{page}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a markdown page, CommonMark's way: a block closes at a line of only the same fence
    character, at least as many (so "``` text" does not close one), or at the end of the page."""
    lines = page.read_text().splitlines()
    found, i = [], 0
    while i < len(lines):
        opened = OPEN.match(lines[i])
        if not opened:
            i += 1
            continue
        fence = opened["fence"]
        close = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        end = next((j for j in range(i + 1, len(lines)) if close.match(lines[j])), len(lines))
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        skip = SKIP.match(before)
        found.append(Block(page, i + 1, opened["info"].lower(), "\n".join(lines[i + 1:end]) + "\n",
                           skip["reason"] if skip else None, fence, end < len(lines)))
        i = end + 1
    return found


def python_blocks(page: Path) -> list[Block]:
    return [b for b in blocks(page) if b.language in LANGUAGES]


def run_page(page: Path) -> int:
    """Run the page's Python blocks in order in one namespace (in the current directory); 1 at the first failure."""
    namespace: dict = {"__name__": "__main__"}
    for block in python_blocks(page):
        if block.skip is not None:
            print(f"skipped {block.where}: {block.skip}", flush=True)
            continue
        print(f"running {block.where}", flush=True)
        code = compile("\n" * block.line + block.code, str(block.page), "exec")  # tracebacks name the page's lines
        start = time.perf_counter()
        try:
            exec(code, namespace)
        except BaseException:
            traceback.print_exc()
            print(f"FAILED: the block at {block.where}", flush=True)
            return 1
        print(f"ok {block.where} ({time.perf_counter() - start:.1f} s)", flush=True)
    return 0


def _run_in_subprocess(page: Path, cwd: Path, timeout: float = PAGE_TIMEOUT_S) -> tuple[int | None, str]:
    """Run ``page`` in a fresh interpreter (``-c``, so the worker processes a block starts re-import no script)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    runner = (f"import sys; sys.path.append({str(Path(__file__).parent)!r}); from test_docs_run import run_page; "
              f"sys.exit(run_page(__import__('pathlib').Path({str(page)!r})))")
    try:
        done = subprocess.run([sys.executable, "-c", runner], cwd=cwd, env=env, check=False,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return None, out
    return done.returncode, done.stdout


RUN = [p for p in PAGES if any(b.skip is None for b in python_blocks(p))]
SKIPPED = [b for p in PAGES for b in python_blocks(p) if b.skip is not None]


@pytest.mark.parametrize("page", RUN, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_python_blocks_of_a_page_run(page: Path, tmp_path: Path):
    rc, out = _run_in_subprocess(page, tmp_path)
    if rc is None:
        started = re.findall(r"^running (\S+)$", out, re.M)
        pytest.fail(f"{page.relative_to(ROOT)}: over {PAGE_TIMEOUT_S} s, in the block at "
                    f"{started[-1] if started else '?'}\n{out[-4000:]}")
    assert rc == 0, out[-6000:]


if SKIPPED:  # each block marked skip-test is reported as skipped, with its reason

    @pytest.mark.parametrize("block", SKIPPED, ids=lambda b: b.where)
    def test_a_block_marked_skip_test(block: Block):
        assert block.skip, f"{block.where}: a skip-test mark needs a reason"
        pytest.skip(f"{block.where}: {block.skip}")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_code_block_closes_where_it_should(page: Path):
    """A closing fence followed by text ("``` more prose") closes nothing: the block swallows the prose after it."""
    broken = [f"{b.where}: never closed" for b in blocks(page) if not b.closed]
    broken += [f"{b.where}: a fence line inside the block: {line.strip()[:40]!r}"
               for b in blocks(page) for line in b.code.splitlines() if line.lstrip().startswith(b.fence)]
    assert not broken, "; ".join(broken)


def test_the_pages_with_python_blocks_are_found():
    with_python = {p.relative_to(ROOT).as_posix() for p in PAGES if python_blocks(p)}
    assert {"README.md", "docs/design.md", "docs/cli.md"} <= with_python


def test_the_runner_runs_blocks_in_order_and_names_the_failing_line(tmp_path: Path):
    page = tmp_path / "page.md"
    page.write_text(
        "# A page\n\n"
        "```python\nfrom pathlib import Path\nPath('made.txt').write_text('x')\nvalue = 41\n```\n\n"
        "```bash\nexit 1\n```\n\n"
        "```\nnot python either\n```\n\n"
        "<!-- skip-test: needs ../shared -->\n```python\nraise SystemExit('a skipped block ran')\n```\n\n"
        "```python\nassert value == 41 and Path('made.txt').exists()\n```\n\n"
        "```bash\necho\n``` text after a fence does not close it\n```python\nraise SystemExit('in bash')\n```\n\n"
        "```python\nvalue += 1\nassert value == 41, 'the last block'\n```\n")
    found = python_blocks(page)
    assert [(b.line, b.skip) for b in found] == [(3, None), (18, "needs ../shared"), (22, None), (33, None)]
    work = tmp_path / "work"
    work.mkdir()
    rc, out = _run_in_subprocess(page, work, timeout=60)
    assert rc == 1, out
    assert "skipped " + found[1].where + ": needs ../shared" in out
    assert "FAILED: the block at " + found[3].where in out
    assert f'File "{page}", line 35' in out and "AssertionError: the last block" in out
    assert (work / "made.txt").exists()


if __name__ == "__main__":
    sys.exit(run_page(Path(sys.argv[1]).resolve()))
