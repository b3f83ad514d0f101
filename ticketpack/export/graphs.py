"""The ONNX graph of an export and its checks: torch.onnx through a route with every prunable weight under its
own name, ``onnx.checker``, ONNX Runtime logits and the float parity gate, the format note, and the finished file's
producer fields with its embedded card."""

from __future__ import annotations

import numpy as np
import onnx

from ticketpack.core.errors import GateFailed, TicketpackError
from ticketpack.runtime.card import ModelCard
from ticketpack.runtime.cardio import embed_card
from ticketpack.runtime.session import make_session, node_domains, required_onnxruntime
from ticketpack.runtime.storage import bitmask_candidates
from ticketpack.version import __version__


def ort_session(model_bytes: bytes, threads: int | None):
    try:
        return make_session(model_bytes, "cpu", threads)[0]
    except TicketpackError as exc:
        raise GateFailed(f"ONNX Runtime cannot load the exported graph: {exc}") from None


def ort_logits(model: onnx.ModelProto, x: np.ndarray, threads: int | None) -> np.ndarray:
    session = ort_session(model.SerializeToString(), threads)
    return np.concatenate([session.run(["logits"], {"input": x[i : i + 1024]})[0] for i in range(0, len(x), 1024)])


def check_graph(model: onnx.ModelProto, what: str) -> None:
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise GateFailed(f"onnx.checker rejects the {what} graph: {str(exc).splitlines()[0][:300]}") from None


def float_parity(graph: onnx.ModelProto, x: np.ndarray, reference: np.ndarray, atol: float,
                 threads: int | None = None) -> float:
    """The parity gate of a float graph: ``onnx.checker`` (full check), an ONNX Runtime session, and max |ORT -
    PyTorch| over ``x`` within ``atol``; returns that difference, ``GateFailed`` when a check fails."""
    check_graph(graph, "float")
    diff = float(np.abs(ort_logits(graph, x, threads) - reference).max())
    if not diff <= atol:
        raise GateFailed(f"parity: the float graph differs from PyTorch by {diff:.2e} > atol {atol:g}; nothing written")
    return diff


QUANTIZED_OPS = ("MatMul", "Conv", "Gather")


def onnx_graph(model, example, opset: int, prunable: dict[str, np.ndarray], route: str = "torchscript") -> onnx.ModelProto:
    """The ONNX graph of a torch model, with every prunable weight stored under its own name (or ``name.T``)."""
    from ticketpack.export.to_onnx import gemm_to_matmul, name_weights, to_onnx

    graph = to_onnx(model, example, opset, route)
    gemm_to_matmul(graph)
    missing = name_weights(graph, prunable)
    if missing:
        raise GateFailed(f"the exported graph holds no recognizable copy of {', '.join(missing[:3])}; nothing written")
    return graph


def integer_gathers(graph: onnx.ModelProto) -> list[str]:
    """Gather nodes over integer tables (id remaps): never quantized."""
    ints = {t.name for t in graph.graph.initializer if t.data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)}
    return [n.name for n in graph.graph.node if n.op_type == "Gather" and n.input[0] in ints]


def format_note(fmt: str, compacted: dict[str, list[int]] | None, bitmasked: list[str],
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


def min_onnxruntime(graph: onnx.ModelProto) -> str:
    opset = max((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return required_onnxruntime(graph.ir_version, opset, node_domains(graph.graph.node))


def finish(model: onnx.ModelProto, card: ModelCard, name: str) -> None:
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
