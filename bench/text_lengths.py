"""How long real reviews are, against the text defaults: ids per review (n-grams included) against
``max_tokens``, and characters per review against ``serve --max-text-chars``.

    python bench/text_lengths.py [--data ../shared/data/mdsd] [--out bench/results]

Every ``*.jsonl`` / ``*.csv`` domain file in ``--data`` is read as ticketpack reads it (``ticketpack.data.text``),
each row once as it stands in the file (duplicates kept: a server sees them all), and featurized with the default
``TextPreprocessing``. Reports per domain: reviews, the longest in ids and in characters, how many reviews have
more ids than ``max_tokens`` and how many ids they lose, and the same over all domains. Writes
``<out>/text_lengths.md`` and ``<out>/text_lengths.json``. Needs no torch.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from ticketpack.data.kinds import TextPreprocessing
from ticketpack.data.text import SUFFIXES, read_rows
from ticketpack.serve.config import ServeConfig

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mdsd"


def measure(path: Path, prep: TextPreprocessing) -> dict:
    texts = [text for text, _ in read_rows(path)]
    ids = [len(prep.tokens(t)) for t in texts]
    chars = [len(t) for t in texts]
    over = [n for n in ids if n > prep.max_tokens]
    return {
        "domain": path.stem, "reviews": len(texts), "median_ids": statistics.median(ids), "longest_ids": max(ids),
        "over_max_tokens": len(over), "ids_cut": sum(n - prep.max_tokens for n in over), "ids": sum(ids),
        "median_chars": statistics.median(chars), "longest_chars": max(chars),
        "cut": [lost_by_order(t, prep) for t, n in zip(texts, ids) if n > prep.max_tokens],
    }


def lost_by_order(text: str, prep: TextPreprocessing) -> dict:
    """What a review over max_tokens loses: ids are its words, then its 2-grams, then its 3-grams, and the cut
    takes the tail, so the longest grams go first."""
    lowered = text.lower() if prep.lowercase else text
    words = len(prep._regex.findall(lowered))
    counts = [max(words - n + 1, 0) for n in range(1, prep.ngrams + 1)]
    lost, room = {}, prep.max_tokens
    for n, count in enumerate(counts, 1):
        lost[f"{n}-grams"] = [max(count - room, 0), count]
        room = max(room - count, 0)
    return {"chars": len(text), "words": words, "lost": lost}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    prep = TextPreprocessing()
    limit = ServeConfig.model_fields["max_text_chars"].default
    rows = [measure(p, prep) for p in sorted(args.data.iterdir()) if p.suffix in SUFFIXES]
    if not rows:
        raise SystemExit(f"{args.data} holds no .jsonl or .csv domain files")
    total = {
        "domain": "all", "reviews": sum(r["reviews"] for r in rows), "median_ids": None,
        "longest_ids": max(r["longest_ids"] for r in rows),
        "over_max_tokens": sum(r["over_max_tokens"] for r in rows), "ids_cut": sum(r["ids_cut"] for r in rows),
        "ids": sum(r["ids"] for r in rows), "median_chars": None, "longest_chars": max(r["longest_chars"] for r in rows),
    }
    result = {"data": args.data.name, "max_tokens": prep.max_tokens, "ngrams": prep.ngrams,
              "max_text_chars": limit, "domains": rows, "all": total}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "text_lengths.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Review lengths against the text defaults", "",
        (f"Data: `{args.data.name}/` (every row as in the file, duplicates kept), default featurization (word 1-"
        f"{prep.ngrams} grams), `max_tokens` {prep.max_tokens:,}, `serve --max-text-chars` default {limit:,}. "
        "Written by `python bench/text_lengths.py`."), "",
        "| domain | reviews | median ids | longest (ids) | over max_tokens | ids cut | median chars | longest (chars) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in [*rows, total]:
        med_ids = "" if r["median_ids"] is None else f"{r['median_ids']:,.0f}"
        med_chars = "" if r["median_chars"] is None else f"{r['median_chars']:,.0f}"
        lines.append(f"| {r['domain']} | {r['reviews']:,} | {med_ids} | {r['longest_ids']:,} | {r['over_max_tokens']:,} "
                     f"| {r['ids_cut']:,} of {r['ids']:,} | {med_chars} | {r['longest_chars']:,} |")
    lines.append("")
    for r in rows:
        for c in r["cut"]:
            lost = ", ".join(f"{n} {v[0]:,} of {v[1]:,}" for n, v in c["lost"].items())
            lines.append(f"- cut in {r['domain']}: a review of {c['chars']:,} characters and {c['words']:,} words "
                         f"loses {lost}.")
    fits = total["longest_chars"] <= limit
    lines += ["", (f"Longest review: {total['longest_chars']:,} characters, "
              f"{'within' if fits else 'over'} the server's default limit of {limit:,}.")]
    (args.out / "text_lengths.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
