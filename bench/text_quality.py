"""ticketpack's default text model (fastText-style) next to TF-IDF (1-2 grams) + logistic regression (C=10).

    python bench/text_quality.py [--data ../shared/data/mdsd] [--domains books,dvd,electronics] [--seeds 0,1,2]
                                 [--threads 1] [--out bench/results] [--name text_quality] [--text '{"hash": "crc32"}']

Both models see the same ticketpack splits (``TextDirDataset.load``: duplicates dropped, stratified 70/15/15 by
seed). The baseline is scikit-learn's ``TfidfVectorizer(ngram_range=(1, 2))`` fit on the raw train texts and
``LogisticRegression(C=10)``; it is the bench-only extra (``pip install scikit-learn``). The default model is
``FastText`` over ticketpack's own preprocessing (hashed word 1-3 grams), trained with the default recipe below
(best validation accuracy, early stopping), and scored once on test. Reports the mean test accuracy over seeds per
domain, the difference to the baseline with its paired 95% interval, how often hashed ids collide (train split of
the first seed) and how many documents the maximum length cut. Writes ``<out>/<name>.md`` and
``<out>/<name>.json`` (``--name text_quality`` by default); ``--from-json`` writes the markdown again from a JSON it
wrote, without training. ``bench/results/text_quality.*`` ran with crc32 buckets, ``text_quality_murmur3.*`` with
murmur3, the default since the featurization could go into the ONNX graph.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from ticketpack.core.stats import binomial_se, t_interval
from ticketpack.data import SplitConfig, TextPreprocessing
from ticketpack.data import get as get_dataset
from ticketpack.data.text import collision_stats
from ticketpack.models.fasttext import FastText
from ticketpack.models.registry import recipe
from ticketpack.training import TrainConfig, train

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mdsd"

# What a user gets with no flags: the registry's default text model with its recipe, the default featurization.
MODEL_OPTIONS: dict = {}
RECIPE = recipe(TextPreprocessing.default_model)  # each input kind names its default model
TEXT: dict = {}


def baseline(data, C: float, split: str = "test") -> float:
    """TF-IDF (1-2 grams) + logistic regression fit on ``data.train``, scored on ``split``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(ngram_range=(1, 2))
    clf = LogisticRegression(C=C, max_iter=5000).fit(vec.fit_transform(data.train.raw), data.train.y)
    scored = getattr(data, split)
    return float(clf.score(vec.transform(scored.raw), scored.y))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--domains", default="books,dvd,electronics")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--threads", type=int, default=1, help="torch (and BLAS) CPU threads")
    ap.add_argument("--C", type=float, default=10.0, help="logistic regression inverse regularization")
    ap.add_argument("--model-options", type=json.loads, default=MODEL_OPTIONS, help="JSON options for FastText")
    ap.add_argument("--recipe", type=json.loads, default=RECIPE, help="JSON TrainConfig fields")
    ap.add_argument("--text", type=json.loads, default=TEXT, help="JSON TextPreprocessing fields")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--name", default="text_quality", help="file names: <out>/<name>.json and <out>/<name>.md")
    ap.add_argument("--from-json", type=Path, help="only write the markdown again from a text_quality.json")
    args = ap.parse_args()
    if args.from_json:
        write_report(json.loads(args.from_json.read_text()), args.out, args.name)
        return

    torch.set_num_threads(args.threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    except ImportError:
        pass
    print(f"threads: torch {torch.get_num_threads()}", flush=True)

    prep = TextPreprocessing(**args.text)
    recipe = TrainConfig(**args.recipe)
    seeds = [int(s) for s in args.seeds.split(",")]
    ds = get_dataset(args.data)
    rows, runs = [], []
    for domain in args.domains.split(","):
        model_acc, base_acc, info = [], [], {}
        for i, seed in enumerate(seeds):
            t0 = time.perf_counter()
            data = ds.load(domain, seed, SplitConfig(), prep)
            load_s = time.perf_counter() - t0
            if i == 0:
                info = {"collisions": collision_stats(prep, list(data.train.raw)), "truncated": data.info["truncated"],
                        "longest_ids": data.info["longest_ids"], "split_sizes": [len(data.train), len(data.val), len(data.test)]}
            t0 = time.perf_counter()
            b = baseline(data, args.C)
            base_s = time.perf_counter() - t0
            torch.manual_seed(seed)
            model = FastText(prep.input_shape, data.num_classes, prep.num_buckets, **args.model_options)
            result = train(model, data, recipe, seed)
            model_acc.append(result.test_accuracy)
            base_acc.append(b)
            runs.append({"domain": domain, "seed": seed, "fasttext_test": result.test_accuracy,
                         "fasttext_val": result.val_accuracy, "best_step": result.best_iteration,
                         "steps": result.iterations, "fasttext_seconds": round(result.seconds, 2),
                         "baseline_test": b, "baseline_seconds": round(base_s, 2), "load_seconds": round(load_s, 2)})
            print(f"{domain} seed {seed}: fasttext {100 * result.test_accuracy:.1f} (val {100 * result.val_accuracy:.1f},"
                  f" best step {result.best_iteration}/{result.iterations}, {result.seconds:.0f}s)"
                  f"  tfidf+lr {100 * b:.1f}", flush=True)
        m, b = 100 * statistics.mean(model_acc), 100 * statistics.mean(base_acc)
        rows.append({"domain": domain, "fasttext": m, "baseline": b, "diff": m - b,
                     "fasttext_per_seed": [100 * a for a in model_acc], "baseline_per_seed": [100 * a for a in base_acc],
                     "within_1_point": m >= b - 1.0, **info})

    mean_m = statistics.mean(r["fasttext"] for r in rows)
    mean_b = statistics.mean(r["baseline"] for r in rows)
    summary = {
        "all_within_1_point": all(r["within_1_point"] for r in rows),
        "mean_fasttext": mean_m, "mean_baseline": mean_b, "mean_at_least_baseline": mean_m >= mean_b,
    }
    result = {
        "bench": "text_quality", "data": str(args.data), "seeds": seeds, "threads": torch.get_num_threads(),
        "preprocessing": prep.model_dump(), "model": {"name": "FastText", "options": args.model_options},
        "recipe": recipe.model_dump(), "baseline": {"tfidf": {"ngram_range": [1, 2]}, "logreg_C": args.C},
        "domains": rows, "summary": summary, "runs": runs,
        "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    write_report(result, args.out, args.name)


def paired(runs: list[dict]) -> str:
    """fastText − TF-IDF + LR in points over ``runs`` (each pair: one split, both models): mean [95% t-interval]."""
    mean, lo, hi = t_interval([100 * (r["fasttext_test"] - r["baseline_test"]) for r in runs])
    return f"{mean:+.1f} [{lo:+.1f}, {hi:+.1f}]" if lo is not None else f"{mean:+.1f}"


def write_report(result: dict, out: Path, name: str = "text_quality") -> None:
    """``<out>/<name>.md`` from a result (what ``main`` measured, or a JSON file it wrote)."""
    rows, runs, seeds, prep = result["domains"], result["runs"], result["seeds"], result["preprocessing"]
    summary = result["summary"]
    mean_m, mean_b = summary["mean_fasttext"], summary["mean_baseline"]
    n_test = rows[0]["split_sizes"][2]
    se = 100 * binomial_se(mean_b / 100, n_test)
    lines = [
        "# Text quality: default text model vs TF-IDF + logistic regression",
        "",
        f"Same ticketpack splits (70/15/15, duplicates dropped), test accuracy in %, mean over seeds {seeds};"
        f" torch threads: {result['threads']}. Written by `python bench/text_quality.py`.",
        "",
        f"- model: `FastText` {json.dumps(result['model']['options'])}; recipe {json.dumps(result['recipe'])}",
        f"- features: word 1-{prep['ngrams']} grams hashed ({prep.get('hash', 'crc32')}) into {prep['num_buckets']:,}"
        f" buckets, max_tokens {prep['max_tokens']}",
        f"- baseline: TF-IDF 1-2 grams (scikit-learn defaults) + LogisticRegression(C={result['baseline']['logreg_C']:g})",
        "",
        "| domain | fasttext | TF-IDF + LR | diff | paired diff [95% CI] | per seed (fasttext / LR) | within 1 pt |"
        " docs cut | ids shared by >1 n-gram |",
        "|---|---:|---:|---:|---:|---|:-:|---:|---:|",
    ]
    for r in rows:
        per = ", ".join(f"{a:.1f}/{c:.1f}" for a, c in zip(r["fasttext_per_seed"], r["baseline_per_seed"]))
        col = r["collisions"]
        lines.append(f"| {r['domain']} | {r['fasttext']:.2f} | {r['baseline']:.2f} | {r['diff']:+.2f} |"
                     f" {paired([x for x in runs if x['domain'] == r['domain']])} | {per} |"
                     f" {'yes' if r['within_1_point'] else 'no'} | {r['truncated']} |"
                     f" {100 * col['shared_id_tokens']:.1f}% of {col['distinct_tokens']:,} |")
    lines += [
        f"| **mean** | **{mean_m:.2f}** | **{mean_b:.2f}** | {mean_m - mean_b:+.2f} | {paired(runs)} | | | | |",
        "",
        f"All within 1 point: {'yes' if summary['all_within_1_point'] else 'no'}; "
        f"mean at least the baseline's: {'yes' if summary['mean_at_least_baseline'] else 'no'}.",
        "",
        f"How much these differences can say: a test split holds {n_test} reviews, so one accuracy near"
        f" {mean_b:.0f}% has a binomial standard error of {se:.1f} points. The paired difference uses the same split"
        f" for both models; its 95% t-interval is over the seeds of a domain ({len(seeds)} pairs), and over every"
        f" domain and seed ({len(runs)} pairs) on the mean row.",
        "",
        "Collisions: share of the distinct word n-grams of the first seed's train split whose hashed id some other"
        " n-gram there also has (by occurrences: "
        + ", ".join(f"{r['domain']} {100 * r['collisions']['shared_id_occurrences']:.1f}%" for r in rows) + ").",
        "",
    ]
    (out / f"{name}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
