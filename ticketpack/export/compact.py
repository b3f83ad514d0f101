"""Exact structured compaction of a masked model (numpy; the unit structure comes from ``ticketpack.pruning.units``).

A unit whose incoming weights are all zero outputs a constant (``relu(bias)``, or 0 without a bias): its
contribution is folded into each consumer's bias and the unit is dropped. A unit whose outgoing weights are all
zero is dropped outright. Dropping units can empty further units, so this repeats until nothing changes. Input
features whose weights are all zero (MLP pixels, embedding rows) are dropped when that saves enough: the graph
then gathers the kept features, or remaps token ids to the kept rows.

Only float rounding separates the result from the masked dense model (bias folding adds in a different order).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ticketpack.pruning.units import UnitGraph

# Drop input features only if at least this share of them is all-zero: a gather or remap node costs time too.
MIN_INPUT_SAVING = 0.125


@dataclass
class Compaction:
    weights: dict[str, np.ndarray]
    kept_units: dict[str, np.ndarray] = field(default_factory=dict)  # producer weight name → original unit indices
    kept_inputs: dict[str, np.ndarray] = field(default_factory=dict)  # input weight name → original feature indices
    summary: dict[str, list[int]] = field(default_factory=dict)  # name → [kept, original]


def _units_view(w: np.ndarray, axis: int) -> np.ndarray:
    return np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)


def compact(state: dict[str, np.ndarray], graph: UnitGraph, min_input_saving: float = MIN_INPUT_SAVING) -> Compaction:
    """Compact ``state`` (masked weights and biases, torch layout) along ``graph``'s unit groups and inputs."""
    w = {k: np.array(v, dtype=np.float32, copy=True) for k, v in state.items()}
    groups = graph.groups
    kept = {g.producer: np.arange(g.size) for g in groups}
    # owner[(name, axis)]: for every current column of a consumer, the (group, original unit) it belongs to
    owner: dict[tuple[str, int], np.ndarray] = {}
    for gi, g in enumerate(groups):
        for c in g.consumers:
            key = (c.name, c.axis)
            if key not in owner:
                owner[key] = np.full((w[c.name].shape[c.axis], 2), -1, dtype=np.int64)
            for u in range(g.size):
                start = c.offset + u * c.block
                owner[key][start : start + c.block] = (gi, u)

    changed = True
    while changed:
        changed = False
        for gi, g in enumerate(groups):
            units = kept[g.producer]
            if len(units) <= 1:
                continue
            dead_in = ~_units_view(w[g.producer], g.axis).any(axis=1)
            if g.bias is None:
                const = np.zeros(len(units), dtype=np.float64)
            else:
                b = w[g.bias].astype(np.float64)
                const = np.maximum(b, 0.0) if g.activation == "relu" else b
            cols = {}
            dead_out = np.ones(len(units), dtype=bool)
            for c in g.consumers:
                own = owner[(c.name, c.axis)]
                for k, u in enumerate(units):
                    idx = np.nonzero((own[:, 0] == gi) & (own[:, 1] == u))[0]
                    cols[(c.name, k)] = idx
                    if np.take(w[c.name], idx, axis=c.axis).any():
                        dead_out[k] = False
            foldable = all(c.foldable for c in g.consumers)
            removable = dead_out | (dead_in & ((const == 0) | foldable))
            if removable.all():
                removable[0] = False  # keep one unit so that no tensor has a zero-size axis
            if not removable.any():
                continue
            for k in np.nonzero(removable & ~dead_out & (const != 0))[0]:
                for c in g.consumers:
                    block = np.take(w[c.name], cols[(c.name, k)], axis=c.axis).astype(np.float64)
                    w[c.bias] = (w[c.bias] + const[k] * block.sum(axis=tuple(range(1, block.ndim)))).astype(np.float32)
            drop = np.nonzero(removable)[0]
            w[g.producer] = np.delete(w[g.producer], drop, axis=g.axis)
            if g.bias is not None:
                w[g.bias] = np.delete(w[g.bias], drop)
            for c in g.consumers:
                gone = np.concatenate([cols[(c.name, k)] for k in drop])
                w[c.name] = np.delete(w[c.name], gone, axis=c.axis)
                owner[(c.name, c.axis)] = np.delete(owner[(c.name, c.axis)], gone, axis=0)
            kept[g.producer] = np.delete(units, drop)
            changed = True

    result = Compaction(weights=w, kept_units=kept)
    for g in groups:
        result.summary[g.producer] = [len(kept[g.producer]), g.size]
    for inp in graph.inputs:
        view = _units_view(w[inp.name], inp.axis)
        alive = view.any(axis=1)
        n, n_dead = len(alive), int((~alive).sum())
        width = view.shape[1]
        worth = n_dead >= min_input_saving * n and (inp.kind == "features" or n_dead * width > n)
        if worth and n_dead < n:
            keep = np.nonzero(alive)[0]
            w[inp.name] = np.take(w[inp.name], keep, axis=inp.axis)
            result.kept_inputs[inp.name] = keep
        result.summary[f"{inp.kind}:{inp.name}"] = [n - n_dead if inp.name in result.kept_inputs else n, n]
    return result
