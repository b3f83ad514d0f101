"""``evaluate_model``: accuracy, latency, size and memory of an exported model on ONNX Runtime, optionally side by
side with a baseline model in the same process, checked against gates. Torch-free.

Accuracy uses the test split of a dataset domain (the card's dataset and domain, and the card's split seed and fractions, unless
given) or a labelled JSONL/CSV file, preprocessed as the card says. Latency is ``session.run`` on prepared input
tensors (preprocessing excluded) per batch size, interleaving model and baseline run by run (see ``latency``).
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ticketpack.core.errors import FieldError, TicketpackError
from ticketpack.core.events import OnEvent, resolve_on_event, status
from ticketpack.core.stats import binomial_se
from ticketpack.evaluate import gates as gates_mod
from ticketpack.evaluate.config import EvaluateConfig
from ticketpack.evaluate.latency import LatencyBudget, measure_interleaved
from ticketpack.evaluate.memory import measure_in_subprocess
from ticketpack.evaluate.report import (
    ClassAccuracy,
    Comparison,
    EvaluationReport,
    Gates,
    LatencyStats,
    ModelResult,
    SpeedUp,
)
from ticketpack.version import __version__

LATENCY_NOTE = (
    "wall-clock time of ONNX Runtime session.run on prepared input tensors (preprocessing excluded), after warm-up, "
    f"per call; calls under {LatencyBudget.min_timing_s * 1e3:g} ms are timed in runs of calls_per_run calls (timeit's "
    "autorange) and each run "
    "counts as its mean call; model and baseline alternate run by run"
)
_EVAL_CHUNK = 256


@dataclass
class _Data:
    raw: object
    y: np.ndarray
    dataset: str | None
    domain: str | None
    data_file: str | None
    split: str | None
    seed: int | None


def _open(path: Path, provider: str, threads: int | None):
    from ticketpack.runtime.predictor import Predictor

    path = Path(path)
    if not path.is_file():
        raise TicketpackError(f"model file not found: {path}")
    return Predictor(path, provider, threads)


def _verify_digest(pred, say: Callable[[str], None]) -> None:
    """Refuse a model whose weights are not the ones its card records (as `validate` and `serve` do), and say so."""
    import onnx

    from ticketpack.runtime.digest import weights_digest

    try:
        got = weights_digest(onnx.load(str(pred.path)))
    except Exception as exc:  # onnx's own decode errors
        raise TicketpackError(f"{pred.path}: cannot read its weights to check them against the card ({exc})") from None
    if got != pred.card.weights_digest:
        raise TicketpackError(
            f"{pred.path}: weights digest {got[:12]}… does not match its card's {pred.card.weights_digest[:12]}…: the "
            "file was changed after export; refusing to evaluate it (`ticketpack validate` shows every check)")
    say(f"weights digest of {pred.path.name} matches its card ({got[:12]}…)")


def _load_data(card, dataset: str | None, domain: str | None, data_file: Path | None, seed: int | None) -> _Data:
    labels = list(card.label_names)
    if data_file is not None:
        if dataset is not None or domain is not None:
            raise FieldError("give either `data_file` or `dataset`/`domain`, not both")
        raw, names = card.preprocessing.read_inputs(Path(data_file), labelled=True)
        unknown = sorted(set(names) - set(labels))
        if unknown:
            raise TicketpackError(f"{data_file}: labels {unknown} are not among the model's labels {labels}")
        index = {n: i for i, n in enumerate(labels)}
        return _Data(raw, np.array([index[n] for n in names], dtype=np.int64), None, None, str(data_file), None, None)

    from ticketpack.core.references import is_reference
    from ticketpack.data import SplitConfig, get

    prov = card.provenance
    if dataset is None and is_reference(prov.dataset) and not Path(prov.dataset).exists():
        # a factory is code: run only what the user names, never what a file (which anyone may edit) names
        raise FieldError(f"the model's card names a dataset factory ({prov.dataset}), which is code that "
                              "ticketpack runs only when you name it: pass `dataset` to run it, or `data_file`")
    dataset = dataset or prov.dataset
    domain = domain or prov.target_domain or prov.source_domain
    if seed is None:
        seed = prov.split_seed if prov.split_seed is not None else prov.seed
    split = prov.split or SplitConfig()
    try:
        ds = get(dataset)
    except TicketpackError as exc:
        if dataset == prov.dataset:
            raise FieldError(f"{exc} (the dataset named in the model's card); pass `dataset` or `data_file`",
                             fields=["dataset", "data_file"]) from None
        raise
    data = ds.load(domain, seed, split, preprocessing=card.preprocessing, label_names=labels, labels_of="the model")
    return _Data(data.test.raw, data.test.y, ds.name, domain, None, "test", seed)


def _predict_all(pred, x: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [pred.logits_from_inputs(x[i : i + _EVAL_CHUNK]).argmax(axis=1) for i in range(0, len(x), _EVAL_CHUNK)]
    )


def _accuracy(y: np.ndarray, pred: np.ndarray, labels: list[str]) -> tuple[float, list[ClassAccuracy], list[list[int]]]:
    k = len(labels)
    cm = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    per_class = [
        ClassAccuracy(label=labels[i], support=int(cm[i].sum()),
                      accuracy=float(cm[i, i] / cm[i].sum()) if cm[i].sum() else None)
        for i in range(k)
    ]
    return float((y == pred).mean()), per_class, cm.tolist()


def _paired_se(a: np.ndarray, b: np.ndarray) -> float:
    """Standard error of ``mean(a) - mean(b)`` for per-example correctness measured on the same examples."""
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else 0.0


def _file_sizes(path: Path) -> tuple[int, int]:
    data = Path(path).read_bytes()
    return len(data), len(zlib.compress(data, 6))


def _result(pred, accuracy, latency: list[LatencyStats], peak_mb: float | None) -> ModelResult:
    card = pred.card
    size, compressed = _file_sizes(pred.path)
    acc, per_class, cm = accuracy
    return ModelResult(
        path=str(pred.path), file_bytes=size, compressed_bytes=compressed,
        format=card.export.format, quantize=card.export.quantize,
        weights_remaining=card.sparsity.weights_remaining,
        accuracy=acc, accuracy_se=binomial_se(acc, max(sum(map(sum, cm)), 1)),
        per_class=per_class, confusion_matrix=cm, latency=latency, peak_memory_mb=peak_mb, weights_digest_verified=True,
        card_test_accuracy=card.metrics.test_accuracy, card_dense_accuracy=card.metrics.dense_test_accuracy,
        card_evaluated_on=card.metrics.evaluated_on,
    )


def _split_note(result: ModelResult, data: _Data) -> str | None:
    """The same file on the split its card names must score what the card recorded (up to an argmax tie or two):
    if not, this split is not the export's (another seed or split fractions), and its test rows may be training rows."""
    if data.split != "test" or result.card_test_accuracy is None or result.card_evaluated_on is None:
        return None
    if result.card_evaluated_on.rsplit("/", 2)[-2:] != [data.domain, "test"]:
        return None
    if abs(result.accuracy - result.card_test_accuracy) <= 2.5 / len(data.y):
        return None
    return (f"{result.path}: accuracy {result.accuracy:.4f} on {data.dataset}/{data.domain}/test (seed {data.seed}) differs "
            f"from the {result.card_test_accuracy:.4f} its card recorded on {result.card_evaluated_on}: this split is "
            "probably not the export's (another split seed or split fractions), so test rows may have been training rows")


def evaluate_model(
    model: Path | str,
    config: EvaluateConfig | None = None,
    *,
    on_event: OnEvent | None = None,
    on_progress: Callable[[str], None] | None = None,
    **overrides,
) -> EvaluationReport:
    """Measure ``model`` (and ``baseline``, interleaved) and check ``gates``; never raises for a failed gate:
    call ``report.raise_for_gates()`` for that. Input and usage problems raise :class:`TicketpackError`.

    ``config``: an :class:`EvaluateConfig` (default: its defaults); ``overrides``: any of its fields, which win over
    ``config``'s (``evaluate_model(path, baseline="dense.onnx", threads=1)``; ``seed``, the deprecated name of
    ``split_seed``, still works with a warning). ``latency_budget_s`` bounds the timed runs per batch size (all models
    together). ``on_event`` is called with ``Event("status", stage="evaluate", message=...)`` at each step;
    ``on_progress``, its deprecated name, is called with the message alone.
    """
    import onnxruntime as ort

    cfg = _config(config, overrides)
    say = status(resolve_on_event(on_event, "evaluate", on_progress=on_progress), "evaluate")
    gates, threads, baseline = cfg.gates, cfg.threads, cfg.baseline
    batch_sizes = gates_mod.parse_batch_sizes(cfg.batch_sizes)
    _check_options(threads, cfg.latency_budget_s, gates, batch_sizes, baseline)
    preds = _open_models(Path(model), baseline, cfg.provider, threads, gates, say)
    card = preds[0].card
    data = _load_data(card, cfg.dataset, cfg.domain, cfg.data_file, cfg.split_seed)
    where = data.data_file or f"{data.dataset}/{data.domain}/test (seed {data.seed})"
    say(f"accuracy on {where}: {len(data.y)} examples")
    inputs = [p.prepare(data.raw) for p in preds]  # each model's own card preprocesses the same raw rows
    predictions = [_predict_all(p, x) for p, x in zip(preds, inputs)]
    accuracies = [_accuracy(data.y, pr, list(card.label_names)) for pr in predictions]
    latencies = _latencies(preds, inputs, len(data.y), batch_sizes, cfg.latency_budget_s, say)
    peaks = []
    for p in preds:
        say(f"peak memory of {p.path} (fresh process, batch {batch_sizes[-1]})")
        peaks.append(measure_in_subprocess(str(p.path), p.provider, threads, batch_sizes[-1]))
    results = [_result(*args) for args in zip(preds, accuracies, latencies, peaks)]
    comparison = _comparison(results, predictions, data.y) if len(results) == 2 else None
    baseline_result = results[1] if len(results) == 2 else None
    notes = [n for r in results if (n := _split_note(r, data))]
    gate_results = gates_mod.check(gates, results[0], baseline_result, comparison)
    return EvaluationReport(
        ticketpack_version=__version__, onnxruntime_version=ort.__version__,
        provider=preds[0].provider, threads=threads,
        dataset=data.dataset, domain=data.domain, data_file=data.data_file, split=data.split, seed=data.seed,
        examples=len(data.y), labels=list(card.label_names), latency_note=LATENCY_NOTE,
        model=results[0], baseline=baseline_result, comparison=comparison,
        notes=notes, gates=gate_results, passed=all(g.passed for g in gate_results),
    )


def _config(config: EvaluateConfig | None, overrides: dict) -> EvaluateConfig:
    """``config`` with the keyword overrides of its fields: ``seed`` (deprecated) is ``split_seed``, ``gates=None``
    the default gates, and ``batch_sizes`` may be written ``"1,32,256"``."""
    from ticketpack.core.config_files import with_overrides

    if "seed" in overrides:
        warnings.warn("`seed` is deprecated and will be removed in the next release: pass `split_seed`",
                      DeprecationWarning, stacklevel=3)
        overrides["split_seed"] = overrides.pop("seed")
    if "gates" in overrides and overrides["gates"] is None:
        del overrides["gates"]
    if isinstance(overrides.get("batch_sizes"), str):
        overrides["batch_sizes"] = list(gates_mod.parse_batch_sizes(overrides["batch_sizes"]))
    return with_overrides(EvaluateConfig, config, overrides, "evaluate")


def _check_options(threads: int | None, latency_budget_s: float, gates: Gates, batch_sizes: list[int],
                   baseline: Path | str | None) -> None:
    if threads is not None and threads < 1:
        raise FieldError("`threads` must be at least 1")
    if not math.isfinite(latency_budget_s) or latency_budget_s <= 0:
        raise FieldError(f"`latency_budget_s` must be a positive number of seconds; got {latency_budget_s}")
    gates_mod.check_usage(gates, batch_sizes, baseline is not None)


def _open_models(model: Path, baseline: Path | None, provider: str, threads: int | None, gates: Gates,
                 say: Callable[[str], None]) -> list:
    """The model's predictor (and the baseline's), each with its weights checked against its card; a baseline
    must take the same inputs and give the same labels."""
    say(f"opening {model}")
    main = _open(model, provider, threads)
    _verify_digest(main, say)
    card = main.card
    if gates.max_accuracy_drop is not None and baseline is None and card.metrics.dense_test_accuracy is None:
        raise FieldError("`gates.max_accuracy_drop` needs `baseline` or a card that records a dense reference accuracy")
    if baseline is None:
        return [main]
    say(f"opening baseline {baseline}")
    base = _open(baseline, provider, threads)
    _verify_digest(base, say)
    if base.card.label_names != card.label_names:
        raise TicketpackError(f"the baseline's labels {base.card.label_names} differ from the model's {card.label_names}")
    if type(base.card.preprocessing) is not type(card.preprocessing):
        raise TicketpackError(f"the baseline takes {base.card.preprocessing.kind} inputs but the model takes "
                              f"{card.preprocessing.kind} inputs")
    return [main, base]


def _latencies(preds: list, inputs: list[np.ndarray], rows: int, batch_sizes: list[int], budget_s: float,
               say: Callable[[str], None]) -> list[list[LatencyStats]]:
    """Per model, its latency at each batch size (the first ``bs`` of the ``rows`` examples, repeated as needed),
    models interleaved run by run within ``budget_s`` per batch size."""
    budget = LatencyBudget(max_seconds=budget_s, min_seconds=min(0.2, budget_s / 2))
    latencies: list[list[LatencyStats]] = [[] for _ in preds]
    for bs in batch_sizes:
        say(f"latency at batch {bs}")
        idx = np.arange(bs) % rows
        runners = [
            (lambda s=p.session, n=[p.output_name], f={p.input_name: np.ascontiguousarray(x[idx])}: s.run(n, f))
            for p, x in zip(preds, inputs)
        ]
        for lat, stats in zip(latencies, measure_interleaved(runners, bs, budget)):
            lat.append(stats)
    return latencies


def _comparison(results: list[ModelResult], predictions: list[np.ndarray], y: np.ndarray) -> Comparison:
    """The model against the baseline: speed-up per batch size, size, accuracy (paired) and memory ratios."""
    m, b = results
    return Comparison(
        speedup=[SpeedUp(batch_size=ml.batch_size, speedup=bl.p50_ms / ml.p50_ms) for ml, bl in zip(m.latency, b.latency)],
        size_ratio=m.file_bytes / b.file_bytes,
        compressed_size_ratio=m.compressed_bytes / b.compressed_bytes,
        accuracy_delta=m.accuracy - b.accuracy,
        accuracy_delta_se=_paired_se(predictions[0] == y, predictions[1] == y),
        memory_ratio=(m.peak_memory_mb / b.peak_memory_mb) if b.peak_memory_mb and m.peak_memory_mb else None,
    )
