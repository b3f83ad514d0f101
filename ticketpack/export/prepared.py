"""The first step of an export: the selected weights loaded into the ticket's model (masked, eval mode) and its
PyTorch logits on the held-out test split, computed once for any number of formats; and the output path checked
before any work. Also what the card says of the prepared weights: their sparsity and the share of MACs left."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ticketpack.core.errors import TicketpackError
from ticketpack.core.fileio import check_writable_file
from ticketpack.runtime.card import LayerSparsity, Sparsity

if TYPE_CHECKING:  # torch-side types, imported only when a function needs them
    from torch import nn

    from ticketpack.export.sources import Selection


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
    """Refuse an output path that cannot be written, before any work (and so before any partial file): the same
    check as every output file (:func:`ticketpack.core.fileio.check_writable_file`), naming the argument ``out``."""
    check_writable_file(Path(out), "out")
    return Path(out)


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


def sparsity_of(prepared: Prepared, exported: dict[str, np.ndarray]) -> Sparsity:
    """Per prunable weight: its stored shape (after compaction) and its nonzero count against the original size."""
    original = prepared.selection.ticket.manifest.prunable
    layers, nonzero, total = [], 0, 0
    for name, shape in original.items():
        w = exported[name]
        nz, tot = int(np.count_nonzero(w)), int(np.prod(shape))
        layers.append(LayerSparsity(name=name, shape=list(w.shape), nonzero=nz, total=tot, weights_remaining=nz / tot))
        nonzero, total = nonzero + nz, total + tot
    return Sparsity(weights_remaining=nonzero / total, nonzero=nonzero, total=total, layers=layers,
                    dense_layers=prepared.selection.ticket.manifest.dense_layers)


def mac_fraction(prepared: Prepared) -> float:
    """Multiply-accumulates per example that touch a nonzero weight / those of the unpruned model (prunable layers)."""
    from ticketpack.export.macs import layer_macs

    dense = layer_macs(prepared.model, prepared.selection.ticket.example(), list(prepared.selection.ticket.manifest.prunable))
    left = sum(m * np.count_nonzero(prepared.state[n]) / prepared.state[n].size for n, m in dense.items())
    return float(left / max(sum(dense.values()), 1))
