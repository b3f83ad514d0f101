"""`ticketpack export`: a ticket (or a transferred model) → one ONNX file with its model card, checked before it is written.

    from ticketpack.export.exporter import export_model
    result = export_model("tickets/demo", "model.onnx", level="10%", format="sparse")
    result.size_ratio, result.card.parity.max_abs_diff

Formats: ``dense`` (masked weights as ordinary initializers), ``compact`` (exact structured compaction: dead
units, channels, embedding dimensions and input features removed, see :mod:`ticketpack.export.compact`) and
``sparse`` (compact, then every weight stored as nonzero values plus a bit mask, see
:mod:`ticketpack.runtime.storage`); ``quantize="int8"`` applies ONNX Runtime's dynamic quantization on top,
``quantize="int8-static"`` its static QDQ quantization calibrated on a seeded sample of the training split (see
:mod:`ticketpack.export.quantize`).

Before anything is written: ``onnx.checker`` (full check), an ONNX Runtime session, and ORT logits against
PyTorch logits on the held-out test split (max abs diff within ``atol``; for int8, the float graph within
``atol`` and the argmax agreement of the quantized one at least ``min_int8_agreement``; for static int8 also its
accuracy within ``max_static_int8_drop`` points of PyTorch's). A failed check raises
:class:`~ticketpack.errors.GateFailed` and writes nothing; the file itself is written atomically.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import onnx
from pydantic import BaseModel, ConfigDict, Field

from ticketpack.errors import GateFailed, TicketpackError
from ticketpack.fileio import atomic_path
from ticketpack.runtime.card import (
    Calibration,
    ExportOptions,
    InputSignature,
    LayerSparsity,
    Metrics,
    ModelCard,
    ParityCheck,
    Provenance,
    Sparsity,
)
from ticketpack.runtime.cardio import embed_card
from ticketpack.runtime.digest import weights_digest
from ticketpack.runtime.session import make_session, required_onnxruntime
from ticketpack.runtime.storage import (
    bitmask_candidates,
    bitmask_encode,
    quantize_int8,
    rank_encode,
)
from ticketpack.version import __version__

if TYPE_CHECKING:  # torch-side types, imported only when a function needs them
    from ticketpack.export.sources import Selection
    from torch import nn

MIN_OPSET = 13
MAX_OPSET = onnx.defs.onnx_opset_version()


class ExportConfig(BaseModel):
    """How to export: which weights, which format, and the checks they must pass."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: str | int | None = Field(
        None, description="Round number or weights-remaining percentage ('10%'); default: the sparsest level within "
        "max_accuracy_drop of dense (by validation accuracy)."
    )
    init: str | None = Field(None, description="Transfer runs: initialization strategy of the job to export.")
    seed: int | None = Field(None, ge=0, description="Transfer runs: seed index of the job to export (default: the "
                             "lowest).")
    format: Literal["dense", "compact", "sparse"] = Field("compact", description="dense, compact or sparse.")
    quantize: Literal["none", "int8", "int8-static"] = Field(
        "none", description="int8: ONNX Runtime dynamic quantization on top; int8-static: static QDQ quantization, "
        "activation ranges calibrated on a sample of the training split."
    )
    calibration_samples: int = Field(256, ge=1, description="int8-static: training examples to calibrate on.")
    calibration_method: Literal["minmax", "entropy", "percentile"] = Field(
        "minmax", description="int8-static: how activation ranges are set from the calibration sample."
    )
    calibration_seed: int = Field(0, ge=0, description="int8-static: seed of the calibration sample.")
    opset: int = Field(17, ge=MIN_OPSET, le=MAX_OPSET, description="ONNX opset of the graph.")
    max_accuracy_drop: float = Field(
        1.0, ge=0, le=100, description="Points of validation accuracy below dense allowed when choosing a level; a "
        "level must clear it by one standard error of the difference on the validation split.")
    atol: float = Field(1e-4, gt=0, description="Largest |ORT - PyTorch| logit difference accepted (float graphs).")
    min_int8_agreement: float = Field(
        0.95, ge=0, le=1, description="Smallest argmax agreement accepted for int8 (one disagreement always passes)."
    )
    max_static_int8_drop: float = Field(
        1.0, ge=0, le=100, description="int8-static: points of test accuracy below the float model's accepted (one "
        "more misclassified example always passes)."
    )
    threads: int | None = Field(None, ge=1, description="CPU threads for PyTorch and ONNX Runtime during the checks.")
    route: Literal["torchscript", "dynamo", "auto"] = Field(
        "torchscript", description="torch.onnx exporter: torchscript (dynamo=False, deprecated by torch), dynamo (the "
        "torch.export route: needs onnxscript, 0.6-2 s more per graph, and it names buffers val_N, so the card's "
        "rank_encoded lists those names) or auto (dynamo where its graph passes the export checks, else "
        "torchscript); the card records the one used. See bench/results/export_routes.md."
    )
    allow_changed_model: bool = Field(
        False, description="Build the model even if its factory's source file changed since the ticket search."
    )


class ExportResult(BaseModel):
    """What `ticketpack export` wrote (``--json`` prints this)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    file_bytes: int
    dense_bytes: int = Field(description="Size of the unpruned architecture exported as `dense` (same card).")
    size_ratio: float = Field(description="file_bytes / dense_bytes.")
    source: str
    source_kind: Literal["ticket", "transfer"]
    level: int
    weights_remaining: float = Field(description="Fraction of prunable weights kept by the ticket's mask.")
    level_reason: str = Field(description="Which level was exported and why.")
    mac_fraction: float = Field(description="Multiply-accumulates of nonzero weights per example / the dense model's.")
    route_note: str | None = Field(
        None, description="route auto: why the dynamo route was not used, when the file came from the torchscript one."
    )
    format_note: str | None = Field(
        None, description="When the chosen format stores nothing of this ticket smaller than another format: what "
        "happened and the format that would (the CLI prints it as a warning)."
    )
    card: ModelCard
    seconds: float


@dataclass
class Prepared:
    """A selection plus everything the checks need, computed once for any number of formats."""

    selection: Selection
    model: nn.Module  # the selected weights loaded and masked, eval mode
    state: dict[str, np.ndarray]  # masked weights and biases, torch layout
    x_test: np.ndarray
    y_test: np.ndarray
    torch_logits: np.ndarray
    threads: int | None


def check_out_path(out: Path) -> Path:
    """Refuse an output path that cannot be written, before any work (and so before any partial file)."""
    out = Path(out)
    if out.exists() and out.is_dir():
        raise TicketpackError(f"-o {out} is a directory; give a file path such as {out / 'model.onnx'}")
    parent = out.parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise TicketpackError(f"cannot write {out}: {probe} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise TicketpackError(f"cannot write {out}: directory {probe} is not writable")
    return out


def prepare(source: Path, level=None, init=None, seed=None, max_accuracy_drop: float = 1.0,
            threads: int | None = None, allow_changed_model: bool = False) -> Prepared:
    """Select the weights and compute the PyTorch reference logits on the held-out test split."""
    import torch

    from ticketpack.export.sources import select
    from ticketpack.models.scope import torch_scope
    from ticketpack.pruning.mask import apply_mask

    sel = select(Path(source), level, init, seed, max_accuracy_drop)
    model = sel.ticket.build_model(allow_changed_model)
    try:
        model.load_state_dict(sel.state)
    except RuntimeError as exc:
        raise TicketpackError(f"{sel.root}: the weights do not fit the ticket's model ({str(exc).splitlines()[0]})") from None
    if sel.mask is not None:
        apply_mask(model, sel.ticket.training_mask(model, sel.mask))
    model.eval()
    state = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    x, y = sel.data.test.x, sel.data.test.y
    with torch_scope(threads), torch.no_grad():
        logits = np.concatenate([model(torch.from_numpy(np.ascontiguousarray(x[i : i + 1024]))).numpy()
                                 for i in range(0, len(x), 1024)])
    return Prepared(sel, model, state, x, y, logits, threads)


def _session(model_bytes: bytes, threads: int | None):
    try:
        return make_session(model_bytes, "cpu", threads)[0]
    except TicketpackError as exc:
        raise GateFailed(f"ONNX Runtime cannot load the exported graph: {exc}") from None


def _ort_logits(model: onnx.ModelProto, x: np.ndarray, threads: int | None) -> np.ndarray:
    session = _session(model.SerializeToString(), threads)
    return np.concatenate([session.run(["logits"], {"input": x[i : i + 1024]})[0] for i in range(0, len(x), 1024)])


def _check(model: onnx.ModelProto, what: str) -> None:
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise GateFailed(f"onnx.checker rejects the {what} graph: {str(exc).splitlines()[0][:300]}") from None


def float_parity(graph: onnx.ModelProto, x: np.ndarray, reference: np.ndarray, atol: float,
                 threads: int | None = None) -> float:
    """The parity gate of a float graph: ``onnx.checker`` (full check), an ONNX Runtime session, and max |ORT -
    PyTorch| over ``x`` within ``atol``; returns that difference, ``GateFailed`` when a check fails."""
    _check(graph, "float")
    diff = float(np.abs(_ort_logits(graph, x, threads) - reference).max())
    if not diff <= atol:
        raise GateFailed(f"parity: the float graph differs from PyTorch by {diff:.2e} > atol {atol:g}; nothing written")
    return diff


def _sparsity(prepared: Prepared, exported: dict[str, np.ndarray]) -> Sparsity:
    """Per prunable weight: its stored shape (after compaction) and its nonzero count against the original size."""
    original = prepared.selection.ticket.manifest.prunable
    layers, nonzero, total = [], 0, 0
    for name, shape in original.items():
        w = exported[name]
        nz, tot = int(np.count_nonzero(w)), int(np.prod(shape))
        layers.append(LayerSparsity(name=name, shape=list(w.shape), nonzero=nz, total=tot, weights_remaining=nz / tot))
        nonzero, total = nonzero + nz, total + tot
    return Sparsity(weights_remaining=nonzero / total, nonzero=nonzero, total=total, layers=layers)


def _mac_fraction(prepared: Prepared) -> float:
    """Multiply-accumulates per example that touch a nonzero weight / those of the unpruned model (prunable layers)."""
    from ticketpack.export.macs import layer_macs

    dense = layer_macs(prepared.model, prepared.selection.ticket.example(), list(prepared.selection.ticket.manifest.prunable))
    left = sum(m * np.count_nonzero(prepared.state[n]) / prepared.state[n].size for n, m in dense.items())
    return float(left / max(sum(dense.values()), 1))


QUANTIZED_OPS = ("MatMul", "Conv", "Gather")


def _graph(model, example, opset: int, prunable: dict[str, np.ndarray], route: str = "torchscript") -> onnx.ModelProto:
    """The ONNX graph of a torch model, with every prunable weight stored under its own name (or ``name.T``)."""
    from ticketpack.export.to_onnx import gemm_to_matmul, name_weights, to_onnx

    graph = to_onnx(model, example, opset, route)
    gemm_to_matmul(graph)
    missing = name_weights(graph, prunable)
    if missing:
        raise GateFailed(f"the exported graph holds no recognizable copy of {', '.join(missing[:3])}; nothing written")
    return graph


def _quantize_static(graph: onnx.ModelProto, data, config: ExportConfig) -> tuple[onnx.ModelProto, Calibration]:
    """QDQ int8 calibrated on a seeded sample of the training split of the data the weights were trained on."""
    from ticketpack.export.quantize import calibration_sample, quantize_static_int8

    sample = calibration_sample(data.train, config.calibration_samples, config.calibration_seed)
    quantized = quantize_static_int8(graph, QUANTIZED_OPS, _integer_gathers(graph), sample, config.calibration_method)
    return quantized, Calibration(method=config.calibration_method, samples=len(sample), seed=config.calibration_seed,
                                  split=f"{data.dataset}/{data.domain}/train")


def _integer_gathers(graph: onnx.ModelProto) -> list[str]:
    """Gather nodes over integer tables (id remaps): never quantized."""
    ints = {t.name for t in graph.graph.initializer if t.data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)}
    return [n.name for n in graph.graph.node if n.op_type == "Gather" and n.input[0] in ints]


def export_prepared(prepared: Prepared, out: Path, config: ExportConfig,
                    on_stage: Callable[[str], None] | None = None) -> ExportResult:
    """Build, check and write one format of a prepared selection; ``route="auto"``: through the dynamo route, and
    through the torchscript one when the dynamo route cannot export the model or its graph fails a check."""
    if config.route != "auto":
        return _build_and_write(prepared, out, config, config.route, on_stage)
    check_out_path(out)
    start = time.perf_counter()
    try:
        return _build_and_write(prepared, out, config, "dynamo", on_stage)
    except TicketpackError as exc:  # it cannot export the model or its graph fails a check (nothing is written)
        result = _build_and_write(prepared, out, config, "torchscript", on_stage)
        return result.model_copy(update={
            "route_note": f"the dynamo route failed ({exc}); exported through the torchscript route",
            "seconds": round(time.perf_counter() - start, 3),
        })


def _build_and_write(prepared: Prepared, out: Path, config: ExportConfig, route: str,
                     on_stage: Callable[[str], None] | None = None) -> ExportResult:
    """Build, check and write one format of a prepared selection through one torch.onnx route."""
    import copy

    from ticketpack.export.compact import compact

    start = time.perf_counter()
    stage = on_stage or (lambda _s: None)
    out = check_out_path(out)
    sel = prepared.selection
    ticket = sel.ticket
    manifest = ticket.manifest
    spec, prep = manifest.config.model, manifest.dataset.preprocessing
    prunable = list(manifest.prunable)
    example = ticket.example()
    compacted = None

    stage("building")
    model = copy.deepcopy(prepared.model)
    if config.format in ("compact", "sparse"):
        compacted = compact(model, example, ticket.output_layer, prunable)
    weights = {k: v.detach().cpu().numpy() for k, v in model.named_parameters()}
    graph = _graph(model, example, config.opset, {n: weights[n] for n in prunable}, route)

    stage("checking")
    float_diff, calibration = None, None
    quantized = config.quantize != "none"
    if quantized:
        float_diff = float_parity(graph, prepared.x_test, prepared.torch_logits, config.atol, prepared.threads)
    if config.quantize == "int8":
        graph = quantize_int8(graph, QUANTIZED_OPS, _integer_gathers(graph))
    elif config.quantize == "int8-static":
        graph, calibration = _quantize_static(graph, sel.data, config)
    bitmasked = bitmask_encode(graph) if config.format == "sparse" else []
    note = _format_note(config.format, compacted, bitmasked, graph)
    remaps = rank_encode(graph)  # id remaps of compacted embeddings: their bits alone
    _check(graph, "exported")
    logits = _ort_logits(graph, prepared.x_test, prepared.threads)
    diff = float(np.abs(logits - prepared.torch_logits).max())
    agreement = float((logits.argmax(1) == prepared.torch_logits.argmax(1)).mean())
    if not quantized and not diff <= config.atol:
        raise GateFailed(f"parity: ONNX Runtime logits differ from PyTorch by {diff:.2e} > atol {config.atol:g}; nothing written")
    n = len(prepared.y_test)
    # one disagreement always passes; rounded down so that readers comparing floats agree with this check
    min_agreement = math.floor(min(config.min_int8_agreement, 1 - 1 / max(n, 1)) * 1e9) / 1e9
    if quantized and agreement < min_agreement:
        raise GateFailed(
            f"parity: int8 predictions agree with PyTorch on {agreement:.1%} of the test split, below "
            f"{config.min_int8_agreement:.0%}; export without `quantize`, nothing written", fields=["quantize"]
        )

    accuracy = float((logits.argmax(1) == prepared.y_test).mean())
    reference = float((prepared.torch_logits.argmax(1) == prepared.y_test).mean())
    drop = 100 * (reference - accuracy)
    if config.quantize == "int8-static" and drop > max(config.max_static_int8_drop, 100 / max(n, 1)) + 1e-9:
        raise GateFailed(  # like the agreement check, one example more misclassified always passes
            f"static int8 test accuracy {accuracy:.2%} is {drop:.2f} points below the float model's {reference:.2%} "
            f"(allowed: {config.max_static_int8_drop:g}); nothing written"
        )
    data = sel.data
    card = ModelCard(
        label_names=list(manifest.dataset.label_names),
        input=InputSignature(dtype=prep.input_dtype, shape=["batch", *prep.input_shape]),
        preprocessing=prep,
        model=spec,
        model_source=manifest.model_source,
        provenance=Provenance(
            ticketpack_version=__version__, dataset=sel.dataset, source_domain=sel.source_domain,
            target_domain=sel.target_domain, init_strategy=sel.init_strategy, level=sel.level, seed=sel.seed,
            ticket_manifest_sha256=sel.manifest_sha256, run_dir=str(sel.root) if sel.kind == "transfer" else None,
            exported_at=datetime.now(UTC), pruning_strategy=sel.extra.get("strategy"),
            granularity=sel.extra.get("granularity"), split_seed=sel.ticket.manifest.config.seed,
            split=sel.ticket.manifest.config.split, init_weights_sha256=sel.ticket.manifest.init_weights_sha256,
        ),
        sparsity=_sparsity(prepared, weights),
        metrics=Metrics(
            test_accuracy=accuracy, dense_test_accuracy=sel.dense_test_accuracy,
            evaluated_on=f"{data.dataset}/{data.domain}/test", reference_test_accuracy=reference,
            test_examples=len(prepared.y_test),
        ),
        export=ExportOptions(format=config.format, quantize=config.quantize, opset=config.opset, route=route,
                             min_onnxruntime=_min_onnxruntime(graph), calibration=calibration,
                             sparse_encoding="bitmask" if bitmasked else None, compacted=compacted,
                             bitmask_encoded=bitmasked if config.format == "sparse" else None,
                             rank_encoded=remaps),
        parity=ParityCheck(
            examples=len(prepared.y_test), max_abs_diff=diff, argmax_agreement=agreement, atol=config.atol,
            float_max_abs_diff=float_diff,
            min_argmax_agreement=min_agreement if quantized else None,
        ),
        weights_digest=weights_digest(graph),
    )
    _finish(graph, card, spec.name)
    data_bytes = graph.SerializeToString()

    if config.format == "dense" and config.quantize == "none":
        dense_bytes = len(data_bytes)
    else:
        dense = _graph(prepared.model, example, config.opset, {n: prepared.state[n] for n in prunable}, route)
        _finish(dense, card, spec.name)
        dense_bytes = len(dense.SerializeToString())

    stage("writing")
    try:
        with atomic_path(out) as tmp:
            tmp.write_bytes(data_bytes)
    except OSError as exc:
        raise TicketpackError(f"cannot write {out}: {exc.strerror or exc}") from None
    return ExportResult(
        path=str(out), file_bytes=len(data_bytes), dense_bytes=dense_bytes, size_ratio=len(data_bytes) / dense_bytes,
        source=str(sel.root), source_kind=sel.kind, level=sel.level, weights_remaining=sel.weights_remaining,
        level_reason=sel.reason, mac_fraction=_mac_fraction(prepared), format_note=note, card=card,
        seconds=round(time.perf_counter() - start, 3),
    )


def _format_note(fmt: str, compacted: dict[str, list[int]] | None, bitmasked: list[str],
                 graph: onnx.ModelProto) -> str | None:
    """What to tell a user whose chosen format stores nothing of this ticket smaller, naming the format that would."""
    removed = any(kept < was for kept, was in (compacted or {}).values())
    if fmt == "sparse" and not bitmasked:
        return ("--format sparse stored no weight as values + bit mask: after compaction no weight of this ticket has "
                "zeros enough to get smaller by a quarter (" + ("its pruned units, rows or inputs were removed whole"
                if removed else "it keeps most of its weights") + "), so the file is what --format compact writes; use "
                "--format compact")
    if fmt == "compact" and not removed and (candidates := bitmask_candidates(graph)):
        return (f"--format compact removed nothing from this ticket (no unit, channel, head or input is pruned whole), "
                f"so the file is as large as --format dense; --format sparse would store {len(candidates)} of its "
                "weights as values + bit mask")
    return None


def _min_onnxruntime(graph: onnx.ModelProto) -> str:
    opset = max((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return required_onnxruntime(graph.ir_version, opset, {n.domain for n in graph.graph.node})


def _finish(model: onnx.ModelProto, card: ModelCard, name: str) -> None:
    model.producer_name = "ticketpack"
    model.producer_version = __version__
    model.domain = "ai.ticketpack"
    model.model_version = 1
    model.doc_string = (
        f"{name} lottery ticket ({card.export.format}"
        f"{'' if card.export.quantize == 'none' else ', ' + card.export.quantize}), "
        f"{100 * card.sparsity.weights_remaining:.1f}% weights remaining; model card in metadata_props['ticketpack']"
    )
    embed_card(model, card)


def export_model(
    source: Path | str,
    out: Path | str,
    level: str | int | None = None,
    init: str | None = None,
    seed: int | None = None,
    format: str = "compact",
    quantize: str = "none",
    opset: int = 17,
    max_accuracy_drop: float = 1.0,
    atol: float = 1e-4,
    min_int8_agreement: float = 0.95,
    max_static_int8_drop: float = 1.0,
    calibration_samples: int = 256,
    calibration_method: str = "minmax",
    calibration_seed: int = 0,
    threads: int | None = None,
    route: str = "torchscript",
    on_stage: Callable[[str], None] | None = None,
    allow_changed_model: bool = False,
    model=None,
) -> ExportResult:
    """Export a ticket directory or a transfer run to ``out`` (see the module docstring).

    ``model``: the factory or ``nn.Module`` the ticket was searched with, when it was given as a Python object.
    """
    from pydantic import ValidationError

    from ticketpack.config_files import validation_message
    from ticketpack.models.scope import torch_scope

    try:
        config = ExportConfig(level=level, init=init, seed=seed, format=format, quantize=quantize, opset=opset,
                              max_accuracy_drop=max_accuracy_drop, atol=atol, min_int8_agreement=min_int8_agreement,
                              max_static_int8_drop=max_static_int8_drop, calibration_samples=calibration_samples,
                              calibration_method=calibration_method, calibration_seed=calibration_seed,
                              threads=threads, route=route, allow_changed_model=allow_changed_model)
    except ValidationError as exc:
        raise TicketpackError(validation_message(exc, "invalid export options")) from None
    check_out_path(Path(out))
    if model is not None:
        from ticketpack.export.sources import register_source_model

        register_source_model(Path(source), model)
    (on_stage or (lambda _s: None))("loading")
    with torch_scope():  # building the model draws from torch's global RNG: the caller's state is restored
        prepared = prepare(Path(source), config.level, config.init, config.seed, config.max_accuracy_drop,
                           config.threads, config.allow_changed_model)
        return export_prepared(prepared, Path(out), config, on_stage)
