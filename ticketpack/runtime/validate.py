"""``validate_model``: is this exported file whole, honest about itself and runnable? (torch-free)

Checks, in order (a check that makes later ones meaningless stops the list):
[with a public key: the file verifies against its signature, ``<model>.sig``] → ONNX parse → ``onnx.checker`` full
check → card present and within its bounds → graph signature matches the card (the label count against the output
width) → weight digest matches the card → sparsity in the card recomputed from the stored weights → the card's own
figures agree with each other → this onnxruntime is at least the card's minimum (and that minimum is not below what
the graph needs) → ONNX Runtime load → smoke inference (its output width against the label count). An onnxruntime
older than the card's minimum fails even when the file happens to load: nothing vouches for its kernels on that
graph (a missing kernel for one type shows at load, a changed one would not), and validate is the gate before a
deployment.
``strict`` adds: parity with PyTorch recorded at export and within its tolerance (int8: the float graph within
``atol`` and the recorded argmax agreement at least the required one).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
from pydantic import BaseModel, ConfigDict

from ticketpack.core.errors import GateFailed, TicketpackError
from ticketpack.core.events import OnEvent, resolve_on_event, status
from ticketpack.runtime.card import CARD_KEY, parse_card
from ticketpack.runtime.cardio import card_json
from ticketpack.runtime.config import ValidateConfig
from ticketpack.runtime.digest import weights_digest
from ticketpack.runtime.selfcontained import (
    check_raw_signature,
    is_self_contained,
    raw_smoke,
    value_signature,
)
from ticketpack.runtime.session import (
    TESTED_FLOOR,
    make_session,
    node_domains,
    release,
    required_onnxruntime,
)
from ticketpack.runtime.storage import nonzero_count
from ticketpack.version import __version__

REPORT_SCHEMA_VERSION = 1

T = TypeVar("T")



class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Check(_Doc):
    name: str
    passed: bool
    detail: str


class ValidationReport(_Doc):
    """What `ticketpack validate` checked in an exported model, one line per check."""

    schema_version: int = REPORT_SCHEMA_VERSION
    ticketpack_version: str
    path: str
    strict: bool
    passed: bool
    checks: list[Check]

    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def raise_if_failed(self) -> None:
        bad = self.failed()
        if bad:
            raise GateFailed(f"{self.path} failed validation: " + "; ".join(f"{c.name}: {c.detail}" for c in bad))


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


def _graph_input(model) -> tuple[str, str, list[int | str]]:
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise TicketpackError(f"the graph has {len(inputs)} inputs; a ticketpack model has exactly one")
    dtype, dims = value_signature(inputs[0])
    return inputs[0].name, dtype, dims


def _check_signature(model, card) -> str:
    """Raise if the graph's input/output do not match the card; return a one-line summary."""
    if is_self_contained(card):
        return check_raw_signature(model, card)
    name, dtype, dims = _graph_input(model)
    want = card.input
    if name != want.name:
        raise TicketpackError(f"graph input is {name!r}, the card says {want.name!r}")
    if dtype != want.dtype:
        raise TicketpackError(f"graph input {name} is {dtype}, the card says {want.dtype}")
    if len(dims) != len(want.shape) or any(
        isinstance(w, int) and d != w for d, w in zip(dims[1:], want.shape[1:])
    ):
        raise TicketpackError(f"graph input shape {dims} does not match the card's {want.shape}")
    outputs = {o.name: o for o in model.graph.output}
    if card.output_name not in outputs:
        raise TicketpackError(f"graph has no output {card.output_name!r} (outputs: {', '.join(outputs)})")
    out_dims = outputs[card.output_name].type.tensor_type.shape.dim
    n_classes = len(card.label_names)
    if out_dims and out_dims[-1].HasField("dim_value") and out_dims[-1].dim_value != n_classes:
        raise TicketpackError(f"output has {out_dims[-1].dim_value} classes, the card names {n_classes} labels")
    return f"{name} {dtype} {dims} → {card.output_name} ({n_classes} classes)"


def _initializers(model) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _same(a: float, b: float) -> bool:
    """Two ratios of the same integers, as JSON carries them (float64 round-trips exactly)."""
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _raise_problems(problems: list[str]) -> None:
    if problems:
        raise TicketpackError("; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""))


def _check_sparsity(model, card) -> str:
    """Recompute the card's sparsity from the graph's stored weights, in every storage form (plain, transposed,
    bit-mask encoded, int8): each layer's non-zero count, its size against the stored shape, each layer's and the
    total weights remaining, and whether the weights are int8 as the card says."""
    arrays = _initializers(model)
    sp = card.sparsity
    problems, total_nonzero, quantized = [], 0, 0
    for layer in sp.layers:
        found = nonzero_count(arrays, layer.name, layer.shape)
        if found is None:
            problems.append(f"{layer.name}: no stored weight for this layer in the graph")
            continue
        _, nonzero, q = found
        quantized += q
        total_nonzero += nonzero
        stored = math.prod(layer.shape)
        # int8 rounding may zero a small surviving weight, never revive a pruned one
        if nonzero > layer.nonzero or (not q and nonzero != layer.nonzero):
            problems.append(f"{layer.name}: {nonzero} non-zero weights in the graph, card says {layer.nonzero}")
        if layer.nonzero > stored:
            problems.append(f"{layer.name}: the card says {layer.nonzero} non-zero weights, its stored shape "
                            f"{layer.shape} holds {stored}")
        # compaction only removes weights; a dense export keeps every one
        if layer.total < stored or (card.export.format == "dense" and layer.total != stored):
            problems.append(f"{layer.name}: the card says the layer had {layer.total} weights, the graph stores "
                            f"{stored} ({card.export.format} format)")
        if not _same(layer.weights_remaining, layer.nonzero / layer.total):
            problems.append(f"{layer.name}: the card says {layer.weights_remaining:.4%} of its weights remain, its "
                            f"counts give {layer.nonzero}/{layer.total} = {layer.nonzero / layer.total:.4%}")
    _raise_problems(problems)
    if card.export.quantize == "none" and quantized:
        problems.append(f"{quantized} of the {len(sp.layers)} layers are stored int8, the card says not quantized")
    if card.export.quantize != "none" and not quantized:
        problems.append(f"no layer is stored int8, the card says {card.export.quantize}")
    layer_nonzero, layer_total = sum(l.nonzero for l in sp.layers), sum(l.total for l in sp.layers)
    if layer_nonzero != sp.nonzero:
        problems.append(f"the card's layers add up to {layer_nonzero} non-zero weights but its total says {sp.nonzero}")
    if layer_total != sp.total:
        problems.append(f"the card's layers add up to {layer_total} weights but its total says {sp.total}")
    if not _same(sp.weights_remaining, sp.nonzero / sp.total):
        problems.append(f"the card says {sp.weights_remaining:.4%} of the weights remain, its counts give "
                        f"{sp.nonzero}/{sp.total} = {sp.nonzero / sp.total:.4%}")
    _raise_problems(problems)
    remaining = total_nonzero / sp.total
    note = " (int8: rounding may zero a few more)" if quantized else ""
    return (f"{len(card.sparsity.layers)} layers, {total_nonzero:,}/{card.sparsity.total:,} weights non-zero "
            f"({remaining:.1%}; card {card.sparsity.weights_remaining:.1%}){note}")


def _integral(fraction: float, n: int) -> bool:
    """Whether ``fraction`` is k/n for a whole k: what a share of ``n`` examples can be."""
    return abs(fraction * n - round(fraction * n)) <= 1e-6


def _check_card_figures(card) -> str:
    """The card's own figures must agree with each other: accuracies and agreement are shares of the examples they
    were measured on, and the relaxed int8 parity rules (an agreement floor instead of atol) only on an int8 file."""
    m, p, quantize = card.metrics, card.parity, card.export.quantize
    problems = []
    n = m.test_examples
    if n is not None:
        for name in ("test_accuracy", "reference_test_accuracy"):
            value = getattr(m, name)
            if value is not None and not _integral(value, n):
                problems.append(f"metrics.{name} {value} is no share of its {n} test examples (k/{n})")
    if p is not None:
        if n is not None and p.examples != n:
            problems.append(f"parity ran on {p.examples} examples, the metrics on {n}: both are the test split")
        if not _integral(p.argmax_agreement, p.examples):
            problems.append(f"parity.argmax_agreement {p.argmax_agreement} is no share of its {p.examples} examples")
        if quantize == "none" and (p.min_argmax_agreement is not None or p.float_max_abs_diff is not None):
            problems.append("the parity check carries int8 tolerances but the card says the file is not quantized")
    if card.export.calibration is not None and quantize != "int8-static":
        problems.append(f"the card records an int8-static calibration but says quantize={quantize}")
    _raise_problems(problems)
    shown = f"accuracy {m.test_accuracy:.4f} on {n} examples" if m.test_accuracy is not None and n else "no accuracy"
    return f"{shown}; parity and quantization claims agree with each other"


def _check_runtime_version(card, model) -> str:
    """The onnxruntime in use must be at least the oldest release the card says the file runs on, and that release
    must not be below what the graph needs (its IR version, opset and node domains; see ``required_onnxruntime``)."""
    need, have = card.export.min_onnxruntime, ort.__version__
    if need is None:
        return f"onnxruntime {have}; the card records no minimum (exported before ticketpack recorded it)"
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    domains = node_domains(model.graph.node)
    if required_onnxruntime(model.ir_version, opset, domains) != TESTED_FLOOR and release(need) <= release(TESTED_FLOOR):
        other = sorted(d for d in domains if d not in ("", "ai.onnx"))
        raise TicketpackError(f"the card says onnxruntime {need} runs this file, but its graph (IR {model.ir_version}, "
                              f"opset {opset}{', domains ' + ', '.join(other) if other else ''}) needs a newer one "
                              f"than {TESTED_FLOOR}")
    if release(have) < release(need):
        raise TicketpackError(f"onnxruntime {have} is older than {need}, the oldest this file runs on: "
                              f"pip install 'onnxruntime>={need}'")
    return f"onnxruntime {have} ≥ {need} (the card's minimum)"


def smoke_batch(card, graph_input: tuple[str, str, list[int | str]] | None = None) -> np.ndarray:
    """A small valid model input: prepared from raw examples when there is a card, else zeros of the graph's type."""
    if card is not None:
        prep = card.preprocessing
        return prep.transform(prep.smoke_inputs())
    _, dtype, dims = graph_input
    shape = [2] + [d if isinstance(d, int) and d > 0 else 1 for d in dims[1:]]
    return np.zeros(shape, dtype=np.int64 if dtype == "int64" else np.float32)


def validate_model(path: Path | str, config: ValidateConfig | None = None, *, provider: str = "cpu",
                   threads: int | None = 1, on_event: OnEvent | None = None, **overrides) -> ValidationReport:
    """Check an exported ticketpack ONNX model. A missing path is a usage error (:class:`TicketpackError`);
    everything wrong *inside* the file is a failed check in the returned report.

    ``config``: a :class:`~ticketpack.runtime.config.ValidateConfig` (default: its defaults); ``overrides``: any of
    its fields, which win over ``config``'s (``validate_model(path, strict=True)``). ``verify``: an elliptic-curve
    public key (PEM); the file must then verify against its signature (``<model>.sig``, written by ``ticketpack export
    --sign``). A missing `sign` extra or an unusable key is a usage error. ``provider`` and ``threads``: where ONNX
    Runtime loads and runs the file. ``on_event`` is called with ``Event("status", stage="validate", message=...)``
    before each check (its name)."""
    from ticketpack.core.config_files import with_overrides

    config = with_overrides(ValidateConfig, config, overrides, "validate")
    strict, verify = config.strict, config.verify
    path = _existing_file(Path(path))
    verifier = None
    if verify is not None:
        from ticketpack.runtime.signing import verifier as make_verifier

        verifier = make_verifier(verify)
    checks = _Checks(status(resolve_on_event(on_event, "validate"), "validate"))
    if verifier is not None:
        from ticketpack.runtime.signing import verify_file

        checks.run("key signature", lambda: verify_file(path, verifier))
    model = checks.produce("onnx file", lambda: _parse(path))
    if model is None:
        return checks.report(path, strict)
    checks.run("onnx checker", lambda: _checker(model))
    card = checks.produce("card", lambda: _read_card(model, path))
    if card is not None:
        _check_against_card(checks, model, card)
    session = checks.produce("onnxruntime load", lambda: _load(path, provider, threads))
    if session is not None:
        checks.run("smoke inference", lambda: _smoke(session, model, card))
    if strict:
        checks.run("parity (strict)", lambda: _check_parity(card))
    return checks.report(path, strict)


def _existing_file(path: Path) -> Path:
    if not path.exists():
        raise TicketpackError(f"model file not found: {path}")
    if not path.is_file():
        raise TicketpackError(f"{path} is not a file")
    return path


class _Checks:
    """The checks run so far, each a name, a verdict and a line; a check that raises has failed."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.checks: list[Check] = []
        self.say = say

    def run(self, name: str, fn: Callable[[], str]) -> bool:
        """Run a check that returns its detail line; whether it passed."""
        return self.produce(name, lambda: (fn(), True)) is not None

    def produce(self, name: str, fn: Callable[[], tuple[str, T]]) -> T | None:
        """Run a check that returns its detail line and what it opened (the model, the card, a session); that, or
        None when it failed."""
        self.say(name)
        try:
            detail, value = fn()
        except TicketpackError as exc:
            self.checks.append(Check(name=name, passed=False, detail=str(exc)))
            return None
        except Exception as exc:  # onnx/ORT raise many types for a damaged model; each is a failed check here
            self.checks.append(Check(name=name, passed=False, detail=f"{type(exc).__name__}: {_first_line(exc)}"))
            return None
        self.checks.append(Check(name=name, passed=True, detail=detail))
        return value

    def report(self, path: Path, strict: bool) -> ValidationReport:
        return ValidationReport(
            ticketpack_version=__version__, path=str(path), strict=strict,
            passed=all(c.passed for c in self.checks) and bool(self.checks), checks=self.checks,
        )


def _parse(path: Path) -> tuple[str, onnx.ModelProto]:
    data = path.read_bytes()
    if not data:
        raise TicketpackError("the file is empty")
    try:
        model = onnx.load_model_from_string(data)
    except Exception:
        raise TicketpackError("not an ONNX model (the protobuf does not parse: truncated or another format)") from None
    if model.ir_version <= 0 or not model.graph.node:
        raise TicketpackError("not an ONNX model (no IR version or no graph nodes)")
    opset = max((o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')), default='?')
    return f"ONNX IR {model.ir_version}, opset {opset}, {len(data):,} bytes", model


def _checker(model: onnx.ModelProto) -> str:
    onnx.checker.check_model(model, full_check=True)
    return "onnx.checker full check passed"


def _read_card(model: onnx.ModelProto, path: Path):
    text = card_json(model)
    if text is None:
        raise TicketpackError(
            f"no ticketpack card (metadata_props[{CARD_KEY!r}]): this file was not written by `ticketpack export`"
        )
    card = parse_card(text, str(path))
    return f"schema v{card.schema_version}, {card.model.name}, {card.export.format}, {len(card.label_names)} labels", card


def _check_against_card(checks: _Checks, model: onnx.ModelProto, card) -> None:
    """The graph's signature, its weights' digest and sparsity, the card's own figures, this onnxruntime."""
    checks.run("signature", lambda: _check_signature(model, card))
    checks.run("weights digest", lambda: _check_digest(model, card))
    checks.run("sparsity", lambda: _check_sparsity(model, card))
    checks.run("card figures", lambda: _check_card_figures(card))
    checks.run("onnxruntime version", lambda: _check_runtime_version(card, model))


def _check_digest(model: onnx.ModelProto, card) -> str:
    got = weights_digest(model)
    if got != card.weights_digest:
        raise TicketpackError(
            f"weights digest {got[:12]}… does not match the card's {card.weights_digest[:12]}…: "
            "the weights were changed after export"
        )
    return f"sha256 {got[:12]}… matches"


def _load(path: Path, provider: str, threads: int | None):
    session, used = make_session(path, provider, threads)
    return f"loaded on {used}", session


def _smoke(session, model: onnx.ModelProto, card) -> str:
    graph_in = session.get_inputs()[0]
    x = raw_smoke(card) if is_self_contained(card) else smoke_batch(card, _graph_input(model) if card is None else None)
    out_name = card.output_name if card is not None else session.get_outputs()[0].name
    y = session.run([out_name], {graph_in.name: x})[0]
    n_classes = len(card.label_names) if card is not None else None
    if y.ndim != 2 or y.shape[0] != x.shape[0] or (n_classes is not None and y.shape[1] != n_classes):
        raise TicketpackError(f"output shape {y.shape}, expected ({x.shape[0]}, {n_classes or 'classes'})")
    if not np.isfinite(y).all():
        raise TicketpackError("the output holds NaN or infinite values")
    return f"batch of {x.shape[0]} → {out_name} {tuple(y.shape)}, finite"


def _check_parity(card) -> str:
    if card is None:
        raise TicketpackError("no card, so no recorded parity")
    p = card.parity
    if p is None:
        raise TicketpackError("the card records no parity check against PyTorch (export with parity checking)")
    if p.min_argmax_agreement is not None:  # int8: the float graph is held to atol, predictions to agreement
        if p.float_max_abs_diff is None or p.float_max_abs_diff > p.atol:
            raise TicketpackError(f"float graph |ORT - PyTorch| = {p.float_max_abs_diff} not within atol {p.atol:.0e}")
        if p.argmax_agreement < p.min_argmax_agreement:
            raise TicketpackError(f"int8 predictions agree with PyTorch on {p.argmax_agreement:.1%}, "
                                  f"below the required {p.min_argmax_agreement:.0%}")
        return (f"int8: float graph max |ORT - PyTorch| {p.float_max_abs_diff:.1e} ≤ atol {p.atol:.0e}; "
                f"{p.argmax_agreement:.1%} argmax agreement on {p.examples} examples")
    if p.max_abs_diff > p.atol:
        raise TicketpackError(f"max |ORT - PyTorch| = {p.max_abs_diff:.2e} exceeds atol {p.atol:.0e}")
    if p.argmax_agreement < 1.0:
        raise TicketpackError(f"only {p.argmax_agreement:.2%} of predicted classes agree with PyTorch")
    return f"max |ORT - PyTorch| {p.max_abs_diff:.1e} ≤ atol {p.atol:.0e} on {p.examples} examples"
