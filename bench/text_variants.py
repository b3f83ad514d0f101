"""Variants of the default text model, compared where a choice may be made: on the validation splits.

    python bench/text_variants.py [--data ../shared/data/mdsd]

For each variant (fastText options or recipe fields on top of the registry's defaults), trains on books, dvd and
electronics with seeds 0, 1, 2 (ticketpack's splits and default featurization, 1 thread) and prints one JSON line:
mean validation accuracy overall and per domain. The test splits are never read. TF-IDF (1-2 grams) + logistic
regression (C=10) is scored on the same validation splits for reference (scikit-learn, the bench-only extra).
Lines are appended to bench/results/text_variants.jsonl.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from ticketpack.data import SplitConfig, TextPreprocessing
from ticketpack.data import get as get_dataset
from ticketpack.models.fasttext import FastText
from ticketpack.models.registry import recipe
from ticketpack.training import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
DOMAINS, SEEDS = ("books", "dvd", "electronics"), (0, 1, 2)
# (name, fastText options, recipe fields, featurization fields)
VARIANTS = [("default", {}, {}, {}), ("sqrt", {"pool": "sqrt"}, {}, {}), ("dim32", {"embed_dim": 32}, {}, {}),
            ("tdrop03", {"token_dropout": 0.3}, {}, {}), ("tdrop07", {"token_dropout": 0.7}, {}, {}),
            ("hidden32", {"hidden": 32}, {}, {}), ("dim4", {"embed_dim": 4}, {}, {}),
            ("lr003", {}, {"lr": 0.003}, {}), ("lr03", {}, {"lr": 0.03}, {}), ("batch64", {}, {"batch_size": 64}, {}),
            ("epochs40", {}, {"epochs": 40, "patience": 20}, {}), ("decay1", {}, {"weight_decay": 1.0}, {}),
            ("buckets2^22", {}, {}, {"num_buckets": 2**22}), ("bigrams", {}, {}, {"ngrams": 2})]


def summary(name: str, vals: dict, **extra) -> dict:
    per = {d: statistics.fmean(v for (dd, _), v in vals.items() if dd == d) for d in DOMAINS}
    return {"name": name, **extra, "val_mean": statistics.fmean(vals.values()), "per_domain": per}


def fasttext_val(ds, name: str, opts: dict, rec: dict, feats: dict) -> dict:
    base, vals, t0 = recipe(TextPreprocessing.default_model), {}, time.perf_counter()
    for dom in DOMAINS:
        for seed in SEEDS:
            data = ds.load(dom, seed, SplitConfig(), TextPreprocessing(**feats))
            torch.manual_seed(seed)  # as bench/text_quality.py builds its model
            prep = data.preprocessing
            model = FastText(prep.input_shape, data.num_classes, prep.num_buckets, **opts)
            vals[(dom, seed)] = train(model, data, TrainConfig.model_validate({**base, **rec}), seed).val_accuracy
    return summary(name, vals, opts=opts, recipe=rec, features=feats, seconds=round(time.perf_counter() - t0, 1))


def baseline_val(ds) -> dict:
    from text_quality import baseline  # bench/, beside this script

    vals = {(dom, seed): baseline(ds.load(dom, seed, SplitConfig(), TextPreprocessing()), C=10.0, split="val")
            for dom in DOMAINS for seed in SEEDS}
    return summary("tfidf-lr", vals)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "mdsd")
    ap.add_argument("names", nargs="*", help="variants to run (default: all, and the TF-IDF baseline)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ds = get_dataset(str(args.data))
    out = ROOT / "bench" / "results" / "text_variants.jsonl"
    chosen = [v for v in VARIANTS if not args.names or v[0] in args.names]
    rows = ([] if args.names else [baseline_val]) + [lambda ds, v=v: fasttext_val(ds, *v) for v in chosen]
    for make in rows:
        row = make(ds)
        line = json.dumps(row)
        print(line, flush=True)
        with out.open("a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
