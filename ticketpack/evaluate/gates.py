"""Gates: parse ``BATCH=MS`` limits, check an evaluation against :class:`Gates`, say by how much each one failed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ticketpack.core.errors import FieldError, field
from ticketpack.evaluate.report import Comparison, GateResult, Gates, ModelResult

MAX_BATCH_SIZE = 65_536  # latency at larger batches says nothing new, and their inputs may not fit in memory


def parse_batch_limits(items: Iterable[str], name: str = "gates.max_p50_ms") -> dict[int, float]:
    """``["1=2.5", "32=10"]`` → ``{1: 2.5, 32: 10.0}``; a malformed item is a usage error (of the field ``name``)."""
    out: dict[int, float] = {}
    for item in items:
        batch, sep, value = str(item).partition("=")
        try:
            b, v = int(batch), float(value)
        except ValueError:
            b, v = 0, 0.0
        if not sep or b < 1 or v <= 0:
            raise FieldError(f"{field(name)} takes BATCH=MS with a positive batch size and limit, e.g. 32=10; got {item!r}")
        out[b] = v
    return out


def parse_batch_sizes(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"1,32,256"`` → ``(1, 32, 256)``."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    try:
        sizes = sorted({int(p) for p in parts if str(p).strip()})
    except ValueError:
        raise FieldError(f"`batch_sizes` takes comma-separated positive integers, e.g. 1,32,256; got {text!r}") from None
    if not sizes or sizes[0] < 1:
        raise FieldError(f"`batch_sizes` takes comma-separated positive integers, e.g. 1,32,256; got {text!r}")
    if sizes[-1] > MAX_BATCH_SIZE:
        raise FieldError(f"`batch_sizes`: {sizes[-1]} is over the largest batch size evaluate times, "
                              f"{MAX_BATCH_SIZE:,}")
    return tuple(sizes)


def check_usage(gates: Gates, batch_sizes: Sequence[int], has_baseline: bool) -> None:
    """Gates that cannot be evaluated are usage errors, raised before any measuring."""
    missing = sorted(set(gates.max_p50_ms) - set(batch_sizes))
    if missing:
        raise FieldError(
            f"`gates.max_p50_ms` names batch size {', '.join(map(str, missing))}, which is not in `batch_sizes` "
            f"{','.join(map(str, batch_sizes))}"
        )
    if gates.min_speedup is not None and not has_baseline:
        raise FieldError("`gates.min_speedup` needs `baseline`: a speed-up is measured against another model")


def check(gates: Gates, model: ModelResult, baseline: ModelResult | None, comparison: Comparison | None) -> list[GateResult]:
    results: list[GateResult] = []

    def add(name: str, passed: bool, value: float, limit: float, detail: str) -> None:
        results.append(GateResult(name=name, passed=passed, value=value, limit=limit, detail=detail))

    if gates.min_accuracy is not None:
        acc, lim = model.accuracy, gates.min_accuracy
        add("min-accuracy", acc >= lim, acc, lim,
            f"min-accuracy: accuracy {acc:.4f} {'≥' if acc >= lim else '<'} {lim:.4f}"
            + ("" if acc >= lim else f" (short by {lim - acc:.4f})"))
    if gates.max_accuracy_drop is not None:
        lim = gates.max_accuracy_drop
        if baseline is not None:
            ref, against = baseline.accuracy, "the baseline"
        elif model.card_dense_accuracy is not None:
            ref = model.card_dense_accuracy
            against = "the card's dense reference" + (f" ({model.card_evaluated_on})" if model.card_evaluated_on else "")
        else:
            raise FieldError(
                "`gates.max_accuracy_drop` needs `baseline` or a card that records a dense reference accuracy"
            )
        drop = ref - model.accuracy
        ok = drop <= lim + 1e-12
        add("max-accuracy-drop", ok, drop, lim,
            f"max-accuracy-drop: accuracy {model.accuracy:.4f} is {drop:+.4f} below {against} {ref:.4f}, limit {lim:.4f}"
            + ("" if ok else f" (over by {drop - lim:.4f})"))
    by_batch = {s.batch_size: s for s in model.latency}
    for batch, lim in sorted(gates.max_p50_ms.items()):
        p50 = by_batch[batch].p50_ms
        ok = p50 <= lim
        add(f"max-p50-ms[{batch}]", ok, p50, lim,
            f"max-p50-ms[{batch}]: p50 {p50:.3f} ms {'≤' if ok else '>'} {lim:.3f} ms"
            + ("" if ok else f" (over by {p50 - lim:.3f} ms, {100 * (p50 / lim - 1):.0f}%)"))
    if gates.min_speedup is not None and comparison is not None:
        s = max(comparison.speedup, key=lambda x: x.batch_size)
        lim = gates.min_speedup
        ok = s.speedup >= lim
        add("min-speedup", ok, s.speedup, lim,
            f"min-speedup: speed-up {s.speedup:.2f}x at batch {s.batch_size} {'≥' if ok else '<'} {lim:.2f}x"
            + ("" if ok else f" (short by {lim - s.speedup:.2f}x)"))
    if gates.max_size_mb is not None:
        mb, lim = model.file_bytes / 1e6, gates.max_size_mb
        ok = mb <= lim
        add("max-size-mb", ok, mb, lim,
            f"max-size-mb: file {mb:.3f} MB {'≤' if ok else '>'} {lim:.3f} MB" + ("" if ok else f" (over by {mb - lim:.3f} MB)"))
    return results
