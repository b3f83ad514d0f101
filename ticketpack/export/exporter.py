"""`ticketpack export`: a ticket (or a transferred model) → one ONNX file with its model card, checked before it is written.

    from ticketpack.export.exporter import ExportConfig, export_model
    result = export_model("tickets/demo", "model.onnx", level="10%", format="sparse")
    result.size_ratio, result.card.parity.max_abs_diff
    # the same export: export_model("tickets/demo", "model.onnx", ExportConfig(level="10%", format="sparse"))

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
:class:`~ticketpack.core.errors.GateFailed` and writes nothing; the file itself is written atomically.
``self_contained=True`` puts the input kind's preprocessing in front of the checked graph, held to the Python featurizer
on the raw test split (:mod:`ticketpack.export.self_contained`). Then the file is timed against the unpruned dense float
graph (:mod:`ticketpack.export.speed`, ``speed_check``): the card records the ratios, and a slower file a warning.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from pydantic import BaseModel, ConfigDict, Field

from ticketpack.core.errors import GateFailed, TicketpackError
from ticketpack.core.events import OnEvent, resolve_on_event, status
from ticketpack.core.fileio import atomic_path
from ticketpack.export.graphs import (
    QUANTIZED_OPS,
    check_graph,
    finish,
    float_parity,
    format_note,
    integer_gathers,
    min_onnxruntime,
    onnx_graph,
    ort_logits,
)

# the names tests and bench/ import from here
from ticketpack.export.graphs import format_note as _format_note  # noqa: F401
from ticketpack.export.graphs import onnx_graph as _graph  # noqa: F401
from ticketpack.export.prepared import (
    Prepared,
    check_out_path,
    mac_fraction,
    prepare,
    sparsity_of,
)
from ticketpack.export.self_contained import raw_input_of
from ticketpack.runtime.card import (
    Calibration,
    ExportOptions,
    InputSignature,
    Metrics,
    ModelCard,
    ParityCheck,
    Provenance,
    SpeedVsDense,
)
from ticketpack.runtime.digest import weights_digest
from ticketpack.runtime.storage import bitmask_encode, rank_encode
from ticketpack.version import __version__

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
        "none", description="int8: ONNX Runtime dynamic quantization on top (MatMul and embedding weights; "
        "convolutions stay float, as ONNX Runtime's ConvInteger is slower than float); int8-static: static QDQ "
        "quantization, convolutions included, activation ranges calibrated on a sample of the training split."
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
    self_contained: bool = Field(
        False, description="Put the input kind's preprocessing in the graph: the file takes what a user has (strings, "
        "uint8 images (N, H, W, C), float64 table rows) as its input `raw` and answers logits, probabilities and label "
        "(class names), held to the Python featurizer + model graph on the whole test split (see "
        "bench/results/self_contained.md for why it is off by default)."
    )
    speed_check: bool = Field(
        True, description="Time the file against the unpruned dense float graph (ONNX Runtime, CPU, `threads`, batch "
        "1 and 64, about a second), record the ratios in the card and warn when the file is over 1.1x slower."
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
    speed_note: str | None = Field(
        None, description="When the file ran over 1.1x the time of the unpruned dense float graph at a batch size on "
        "the export machine: which, by how much, and what to try (the CLI prints it as a warning)."
    )
    card: ModelCard
    seconds: float = Field(description="Wall time of the whole export: loading the source, building, checking and "
                           "writing (before it was recorded so, the time from building on).")


def _quantize_static(graph: onnx.ModelProto, data, config: ExportConfig) -> tuple[onnx.ModelProto, Calibration]:
    """QDQ int8 calibrated on a seeded sample of the training split of the data the weights were trained on."""
    from ticketpack.export.quantize import calibration_sample, quantize_static_int8

    sample = calibration_sample(data.train, config.calibration_samples, config.calibration_seed)
    quantized = quantize_static_int8(graph, QUANTIZED_OPS, integer_gathers(graph), sample, config.calibration_method)
    return quantized, Calibration(method=config.calibration_method, samples=len(sample), seed=config.calibration_seed,
                                  split=f"{data.dataset}/{data.domain}/train")


def export_prepared(prepared: Prepared, out: Path, config: ExportConfig, on_event: OnEvent | None = None,
                    *, on_stage: Callable[[str], None] | None = None) -> ExportResult:
    """Build, check and write one format of a prepared selection; ``route="auto"``: through the dynamo route, and
    through the torchscript one when the dynamo route cannot export the model or its graph fails a check.
    ``on_event`` is called with ``Event("status", stage="export", message=...)`` ("building", "checking", "writing");
    ``on_stage`` is its deprecated name."""
    on_event = resolve_on_event(on_event, "export", on_stage=on_stage)
    out = check_out_path(out)  # once, for whichever route writes the file
    if config.route != "auto":
        return _build_and_write(prepared, out, config, config.route, on_event)
    start = time.perf_counter()
    try:
        return _build_and_write(prepared, out, config, "dynamo", on_event)
    except TicketpackError as exc:  # it cannot export the model or its graph fails a check (nothing is written)
        result = _build_and_write(prepared, out, config, "torchscript", on_event)
        return result.model_copy(update={
            "route_note": f"the dynamo route failed ({exc}); exported through the torchscript route",
            "seconds": round(time.perf_counter() - start, 3),
        })


def _build_and_write(prepared: Prepared, out: Path, config: ExportConfig, route: str,
                     on_event: OnEvent) -> ExportResult:
    """Build, check and write one format of a prepared selection through one torch.onnx route."""
    start = time.perf_counter()
    stage = status(on_event, "export")
    sel = prepared.selection
    stage("building")
    built = _build(prepared, config, route)
    stage("checking")
    checked = _check_built(built, prepared, config)
    is_dense = config.format == "dense" and config.quantize == "none"  # the file is the dense float graph
    dense = None if is_dense else _dense_graph(prepared, config, route)
    speed, speed_note = None, None
    if dense is not None and config.speed_check:  # the model graph alone: preprocessing nodes would be the same
        from ticketpack.export.speed import check_speed

        stage("timing against the dense graph")
        speed, speed_note = check_speed(checked.graph.SerializeToString(), dense.SerializeToString(), prepared.x_test,
                                        prepared.threads, config.format, config.quantize, on_event)
    if config.self_contained:
        stage("composing the self-contained graph")
        checked.graph = _self_contained(checked, prepared, config)
    card = _card(prepared, config, route, checked, speed)
    finish(checked.graph, card, sel.ticket.manifest.config.model.name)
    data_bytes = checked.graph.SerializeToString()
    if dense is not None:
        finish(dense, card, sel.ticket.manifest.config.model.name)
    dense_bytes = len(data_bytes) if dense is None else len(dense.SerializeToString())
    stage("writing")
    try:
        with atomic_path(out) as tmp:
            tmp.write_bytes(data_bytes)
    except OSError as exc:
        raise TicketpackError(f"cannot write {out}: {exc.strerror or exc}") from None
    return ExportResult(
        path=str(out), file_bytes=len(data_bytes), dense_bytes=dense_bytes, size_ratio=len(data_bytes) / dense_bytes,
        source=str(sel.root), source_kind=sel.kind, level=sel.level, weights_remaining=sel.weights_remaining,
        level_reason=sel.reason, mac_fraction=mac_fraction(prepared), format_note=checked.note,
        speed_note=speed_note, card=card,
        seconds=round(time.perf_counter() - start, 3),
    )


@dataclass
class _Built:
    """The float graph of the chosen weights, before any quantization or encoding."""

    graph: onnx.ModelProto
    weights: dict[str, np.ndarray]  # every parameter, as exported (after compaction)
    compacted: dict[str, list[int]] | None
    note: str | None = None  # why a sparse file of a weight ticket was not compacted


def _build(prepared: Prepared, config: ExportConfig, route: str) -> _Built:
    """A copy of the model, compacted for the compact and sparse formats, through torch.onnx."""
    import copy

    from ticketpack.export.compact import compact

    ticket = prepared.selection.ticket
    prunable = list(ticket.manifest.prunable)
    model = copy.deepcopy(prepared.model)
    compacted, note = None, None
    if config.format in ("compact", "sparse"):
        try:
            compacted = compact(model, ticket.example(), ticket.output_layer, prunable)
        except TicketpackError as exc:  # the unit trace failed: a sparse file of a weight ticket needs none
            if config.format == "compact" or ticket.manifest.config.prune.granularity != "weight":
                raise
            model, note = copy.deepcopy(prepared.model), f"dead units were not removed ({exc})"
    weights = {k: v.detach().cpu().numpy() for k, v in model.named_parameters()}
    graph = onnx_graph(model, ticket.example(), config.opset, {n: weights[n] for n in prunable}, route)
    return _Built(graph, weights, compacted, note)


@dataclass
class _Checked:
    """The graph as it will be written (quantized, encoded) and what its checks measured on the test split."""

    graph: onnx.ModelProto
    built: _Built
    logits: np.ndarray  # ONNX Runtime's logits of ``graph`` on the test split
    float_diff: float | None
    calibration: Calibration | None
    bitmasked: list[str]
    remaps: list[str]
    note: str | None
    diff: float
    agreement: float
    min_agreement: float
    accuracy: float
    reference: float


def _check_built(built: _Built, prepared: Prepared, config: ExportConfig) -> _Checked:
    """Quantize and encode the graph as asked, then hold it to the gates: the float graph's parity (quantized
    exports), the checker, ORT against PyTorch (float: within atol; int8: argmax agreement; static int8: accuracy
    within max_static_int8_drop). A failed gate raises :class:`GateFailed`."""
    graph, float_diff, calibration = built.graph, None, None
    quantized = config.quantize != "none"
    if quantized:
        float_diff = float_parity(graph, prepared.x_test, prepared.torch_logits, config.atol, prepared.threads)
    int8_note = None
    if config.quantize == "int8":
        from ticketpack.export.quantize import dynamic_int8

        graph, int8_note = dynamic_int8(graph, integer_gathers(graph))
    elif config.quantize == "int8-static":
        graph, calibration = _quantize_static(graph, prepared.selection.data, config)
    bitmasked = bitmask_encode(graph) if config.format == "sparse" else []
    notes = (built.note, format_note(config.format, built.compacted, bitmasked, graph), int8_note)
    note = "; ".join(n for n in notes if n) or None
    remaps = rank_encode(graph)  # id remaps of compacted embeddings: their bits alone
    check_graph(graph, "exported")
    logits = ort_logits(graph, prepared.x_test, prepared.threads)
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
    return _Checked(graph, built, logits, float_diff, calibration, bitmasked, remaps, note, diff, agreement,
                    min_agreement, accuracy, reference)


def _self_contained(checked: _Checked, prepared: Prepared, config: ExportConfig) -> onnx.ModelProto:
    """The preprocessing's nodes in front of the checked graph, held to the Python featurizer and to the checked
    graph's own logits on the raw test rows."""
    from ticketpack.export.self_contained import make_self_contained

    sel = prepared.selection
    composed, _ = make_self_contained(checked.graph, sel.ticket.manifest.dataset.preprocessing,
                                      list(sel.ticket.manifest.dataset.label_names), sel.data.test.raw,
                                      prepared.x_test, checked.logits, config.atol, prepared.threads)
    return composed


def _card(prepared: Prepared, config: ExportConfig, route: str, checked: _Checked,
          speed: SpeedVsDense | None = None) -> ModelCard:
    """The model card of a checked export: what it is, where it came from, and what it measured."""
    sel = prepared.selection
    manifest = sel.ticket.manifest
    prep, data, quantized = manifest.dataset.preprocessing, sel.data, config.quantize != "none"
    return ModelCard(
        label_names=list(manifest.dataset.label_names),
        input=InputSignature(dtype=prep.input_dtype, shape=["batch", *prep.input_shape]),
        preprocessing=prep,
        model=manifest.config.model,
        model_source=manifest.model_source,
        provenance=Provenance(
            ticketpack_version=__version__, dataset=sel.dataset, source_domain=sel.source_domain,
            target_domain=sel.target_domain, init_strategy=sel.init_strategy, level=sel.level, seed=sel.seed,
            ticket_manifest_sha256=sel.manifest_sha256, run_dir=str(sel.root) if sel.kind == "transfer" else None,
            exported_at=datetime.now(UTC), pruning_strategy=sel.extra.get("strategy"),
            granularity=sel.extra.get("granularity"), split_seed=manifest.config.seed,
            split=manifest.config.split, init_weights_sha256=manifest.init_weights_sha256,
        ),
        sparsity=sparsity_of(prepared, checked.built.weights),
        metrics=Metrics(
            test_accuracy=checked.accuracy, dense_test_accuracy=sel.dense_test_accuracy,
            evaluated_on=f"{data.dataset}/{data.domain}/test", reference_test_accuracy=checked.reference,
            test_examples=len(prepared.y_test),
        ),
        export=ExportOptions(format=config.format, quantize=config.quantize, opset=_opset(checked.graph, config),
                             route=route, self_contained=config.self_contained or None,
                             raw_input=raw_input_of(checked.graph) if config.self_contained else None,
                             min_onnxruntime=min_onnxruntime(checked.graph), calibration=checked.calibration,
                             sparse_encoding="bitmask" if checked.bitmasked else None,
                             compacted=checked.built.compacted,
                             bitmask_encoded=checked.bitmasked if config.format == "sparse" else None,
                             rank_encoded=checked.remaps, speed_vs_dense=speed),
        parity=ParityCheck(
            examples=len(prepared.y_test), max_abs_diff=checked.diff, argmax_agreement=checked.agreement,
            atol=config.atol, float_max_abs_diff=checked.float_diff,
            min_argmax_agreement=checked.min_agreement if quantized else None,
        ),
        weights_digest=weights_digest(checked.graph),
    )


def _opset(graph: onnx.ModelProto, config: ExportConfig) -> int:
    """The opset asked for, or the one a self-contained graph was raised to for its preprocessing nodes."""
    if not config.self_contained:
        return config.opset
    return max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))


def _dense_graph(prepared: Prepared, config: ExportConfig, route: str) -> onnx.ModelProto:
    """The same model as a dense float graph: what ``size_ratio`` (with the card embedded) and the speed check
    compare against."""
    ticket = prepared.selection.ticket
    prunable = list(ticket.manifest.prunable)
    return onnx_graph(prepared.model, ticket.example(), config.opset, {n: prepared.state[n] for n in prunable}, route)


def export_model(
    source: Path | str,
    out: Path | str,
    config: ExportConfig | None = None,
    *,
    on_event: OnEvent | None = None,
    model=None,
    on_stage: Callable[[str], None] | None = None,
    **overrides,
) -> ExportResult:
    """Export a ticket directory or a transfer run to ``out`` (see the module docstring).

    ``config``: an :class:`ExportConfig` (default: its defaults); ``overrides``: any of its fields, which win over
    ``config``'s (``export_model(src, out, level=3, format="sparse")``).
    ``model``: the factory or ``nn.Module`` the ticket was searched with, when it was given as a Python object.
    ``on_event``: called with ``Event("status", stage="export", message=...)`` at each step ("loading", "building",
    "checking", "writing"); ``on_stage``, its deprecated name, is called with the message alone.
    """
    from ticketpack.core.config_files import with_overrides
    from ticketpack.models.scope import torch_scope

    config = with_overrides(ExportConfig, config, overrides, "export")
    check_out_path(Path(out))
    if model is not None:
        from ticketpack.export.sources import register_source_model

        register_source_model(Path(source), model)
    on_event = resolve_on_event(on_event, "export", on_stage=on_stage)
    status(on_event, "export")("loading")
    start = time.perf_counter()
    with torch_scope():  # building the model draws from torch's global RNG: the caller's state is restored
        prepared = prepare(Path(source), config.level, config.init, config.seed, config.max_accuracy_drop,
                           config.threads, config.allow_changed_model)
        result = export_prepared(prepared, Path(out), config, on_event)
    return result.model_copy(update={"seconds": round(time.perf_counter() - start, 3)})
