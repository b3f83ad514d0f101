"""Unit structure of any model, from Torch-Pruning's dependency graph traced on an example input.

A *group* is a set of coupled parameter slices that must go together: a layer's output units (hidden neurons,
conv channels, embedding dimensions) with everything that produces them (the layer's weight rows and bias, the
BatchNorm after it, the residual partners added to them) and everything that consumes them (weight columns of
the next layers, through flatten, concatenation and residual additions). Torch-Pruning
(``tp.DependencyGraph``) finds the groups; this module turns each into plain index arrays per parameter:

- ``out`` slices produce unit ``j`` (weights, biases, norm affine parameters);
- ``in`` slices consume it (weight columns of the next layers).

Neuron-granularity pruning removes whole units of a group, and export removes them for real with Torch-Pruning
(:mod:`ticketpack.export.compact`, where all compaction lives). A group that cannot be removed exactly is left out
with a reason (see :attr:`Structure.skipped`): one through a LayerNorm or GroupNorm (which normalizes over the
units, so a removed zero unit changes the statistics), one that reaches the model's output directly, or one holding a layer with no registered layer type.
Which tensors hold a layer's units is its layer type's word (:mod:`ticketpack.pruning.layers`, where users register
their own layers; Torch-Pruning gets those as ``customized_pruners``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ticketpack.core.errors import TicketpackError
from ticketpack.pruning.bounded import bounded
from ticketpack.pruning.layers import customized_pruners, layer_type, root_types
from ticketpack.pruning.mask import Mask

Side = Literal["out", "in"]


@dataclass(frozen=True)
class Slice:
    """Positions ``index`` of ``param`` along ``axis``; position ``index[k]`` belongs to unit ``unit[k]``."""

    param: str
    axis: int
    index: np.ndarray
    unit: np.ndarray
    side: Side


@dataclass(frozen=True)
class Group:
    root: str  # module whose output units the group is named after
    size: int
    slices: tuple[Slice, ...]
    kind: Literal["units", "heads"] = "units"

    @property
    def name(self) -> str:
        """``<root>.weight`` for units, ``<attention module>:heads`` for attention heads."""
        return f"{self.root}:heads" if self.kind == "heads" else f"{self.root}.weight"

    def params(self, side: Side | None = None) -> list[str]:
        return sorted({s.param for s in self.slices if side is None or s.side == side})


@dataclass
class Structure:
    groups: tuple[Group, ...]
    skipped: dict[str, str] = field(default_factory=dict)  # root module → why it is not unit-prunable
    _graph: Any = None  # the tp.DependencyGraph
    _tp_groups: tuple = ()


def _tp():
    try:
        import torch_pruning as tp
    except ImportError:  # pragma: no cover - a dependency of ticketpack
        raise TicketpackError("neuron granularity and compaction need the torch-pruning package: pip install torch-pruning") from None
    return tp


def _slices_of(module: nn.Module, name: str, side: Side, idxs: np.ndarray, units: np.ndarray) -> list[Slice] | str:
    """The parameter slices one dependency of a group touches, or the reason the group cannot be handled: what the
    module's registered layer type (:mod:`ticketpack.pruning.layers`) says."""
    lt = layer_type(module)
    if lt is None:
        if any(True for _ in module.parameters(recurse=False)):
            return f"layer {name} ({type(module).__name__}) is not mapped"
        return []
    why = lt.why_not(module, name)
    if why is not None:
        return why
    p = f"{name}." if name else ""
    return [Slice(p + param, axis, idxs, units, s) for param, axis, s in lt.slices(module, side)]


def _unmapped_parameter(param: nn.Parameter, param_names: dict[nn.Parameter, str], modules: dict[str, nn.Module]) -> str:
    """Why a group reaching a parameter outside every layer Torch-Pruning follows is left out: its layer is not
    mapped (Torch-Pruning would guess its axis)."""
    full = param_names.get(param, "?")
    owner = full.rpartition(".")[0]
    if owner and owner in modules:
        return f"layer {owner} ({type(modules[owner]).__name__}) is not mapped"
    return f"parameter {full} is in no layer ticketpack maps"


def trace(model: nn.Module, example: torch.Tensor, output_layer: str, prunable: list[str]) -> Structure:
    """The unit groups of ``model`` (its output layer's own outputs are never a group).

    ``prunable``: the weights a mask covers; a group that holds any other weight is skipped (a pruned unit could not
    be removed whole).
    """
    tp = _tp()
    modules = dict(model.named_modules())
    names = {m: n for n, m in modules.items()}
    was_training = model.training
    model.eval()  # no BatchNorm statistics updated by the tracing forward
    try:
        with torch.enable_grad(), warnings.catch_warnings(), bounded(model, "neuron granularity"):
            warnings.simplefilter("ignore")
            graph = tp.DependencyGraph().build_dependency(
                model, example_inputs=example, verbose=False,
                customized_pruners=customized_pruners(list(modules.values())) or None,
            )
            tp_groups = list(graph.get_all_groups(ignored_layers=[modules[output_layer]], root_module_types=root_types()))
    except TicketpackError:
        raise
    except Exception as exc:
        raise TicketpackError(
            f"neuron granularity: Torch-Pruning cannot trace {type(model).__name__}: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''} (weight granularity still works)"
        ) from None
    finally:
        model.train(was_training)

    prunable_set = set(prunable)
    param_names = {p: n for n, p in model.named_parameters()}
    groups, kept_tp, skipped = [], [], {}
    for g in tp_groups:
        root_module = g[0].dep.target.module
        root = names.get(root_module, type(root_module).__name__)
        size = len(g[0].idxs)
        slices: list[Slice] = []
        reason = None
        for item in g:
            module = item.dep.target.module
            if type(module).__name__ == "_OutputOp":
                reason = "its units are outputs of the model"
                break
            if isinstance(module, nn.Parameter):  # a parameter of a layer Torch-Pruning does not know
                reason = _unmapped_parameter(module, param_names, modules)
                break
            if not isinstance(module, nn.Module) or module not in names:
                continue  # an op node (add, concat, reshape, …): no parameters
            side: Side = "out" if graph.is_out_channel_pruning_fn(item.dep.handler) else "in"
            got = _slices_of(module, names[module], side, np.asarray(item.idxs, dtype=np.int64),
                             np.asarray(item.root_idxs, dtype=np.int64))
            if isinstance(got, str):
                reason = got
                break
            slices += got
        if reason is None:
            weights = {s.param for s in slices if _is_layer_weight(modules, s.param)}
            outside = sorted(weights - prunable_set)
            if outside:
                reason = f"it holds {outside[0]}, which the mask does not cover"
        if reason is None and size > 1 and slices:
            groups.append(Group(root, size, tuple(_merge(slices))))
            kept_tp.append(g)
        elif reason is not None:
            skipped[root] = reason
    for name, m in modules.items():
        heads = _head_group(name, m, prunable_set)
        if heads is not None:
            groups.append(heads)
            kept_tp.append(None)
    for name, m in modules.items():
        if name and layer_type(m) is None and any(True for _ in m.parameters(recurse=False)):
            skipped.setdefault(name, f"layer {name} ({type(m).__name__}) is not mapped: its units stay dense")
    return Structure(tuple(groups), skipped, graph, tuple(kept_tp))


def _head_group(name: str, m: nn.Module, prunable: set[str]) -> Group | None:
    """The attention heads of a ``MultiheadAttention`` as a group: head ``h`` owns its rows of the q, k and v
    projections (weights and biases) and its columns of the output projection. Heads live inside the module,
    so Torch-Pruning (which prunes the embedding dimension) does not see them."""
    if not isinstance(m, nn.MultiheadAttention) or m.num_heads < 2 or m.in_proj_weight is None:
        return None
    if m.bias_k is not None or m.add_zero_attn:
        return None
    p = f"{name}." if name else ""
    if f"{p}in_proj_weight" not in prunable or f"{p}out_proj.weight" not in prunable:
        return None
    e, hd, h = m.embed_dim, m.head_dim, m.num_heads
    unit = np.repeat(np.arange(h), hd)
    rows = np.arange(e)
    qkv = np.concatenate([rows, rows + e, rows + 2 * e])
    slices = [Slice(f"{p}in_proj_weight", 0, qkv, np.tile(unit, 3), "out"),
              Slice(f"{p}out_proj.weight", 1, rows, unit, "in")]
    if m.in_proj_bias is not None:
        slices.append(Slice(f"{p}in_proj_bias", 0, qkv, np.tile(unit, 3), "out"))
    return Group(name, h, tuple(slices), "heads")


def _is_layer_weight(modules: dict[str, nn.Module], param: str) -> bool:
    """Whether ``param`` is a weight its layer type lets a mask cover (not a bias or a norm's scale)."""
    owner_name, _, attr = param.rpartition(".")
    owner = modules.get(owner_name)
    lt = None if owner is None else layer_type(owner)
    return lt is not None and attr in lt.prunable(owner)


def _merge(slices: list[Slice]) -> list[Slice]:
    """One slice per (param, axis, side): Torch-Pruning may list a layer once per path that reaches it."""
    merged: dict[tuple[str, int, str], tuple[list, list]] = {}
    for s in slices:
        idx, unit = merged.setdefault((s.param, s.axis, s.side), ([], []))
        idx.append(s.index)
        unit.append(s.unit)
    out = []
    for (param, axis, side), (idx, unit) in merged.items():
        i, u = np.concatenate(idx), np.concatenate(unit)
        i, first = np.unique(i, return_index=True)
        out.append(Slice(param, axis, i, u[first], side))
    return out


def _unit_rows(t: torch.Tensor, s: Slice) -> torch.Tensor:
    """The entries of ``t`` in slice ``s``: one row per position of the slice."""
    moved = t.movedim(s.axis, 0)[torch.from_numpy(s.index)]
    return moved.reshape(len(s.index), -1)


def per_unit(values: dict[str, torch.Tensor], group: Group, side: Side, fn: str) -> torch.Tensor:
    """Reduce each unit's entries over every slice of ``side`` present in ``values``: ``any`` or ``sumsq``."""
    out = torch.zeros(group.size, dtype=torch.bool if fn == "any" else torch.float64)
    for s in group.slices:
        if s.side != side or s.param not in values:
            continue
        rows = _unit_rows(values[s.param], s)
        units = torch.from_numpy(s.unit)
        if fn == "any":
            out[units[rows.any(dim=1)]] = True
        else:
            out.index_add_(0, units, rows.double().pow(2).sum(dim=1))
    return out


def live_units(values: dict[str, torch.Tensor], group: Group) -> torch.Tensor:
    """Units that matter to the output: something they produce is nonzero and something consumes them (a group with
    no consumer weights counts as consumed). At least one unit stays live, so that no tensor gets a zero-size axis."""
    live = per_unit(values, group, "out", "any")
    if group.params("in"):
        live &= per_unit(values, group, "in", "any")
    if not live.any():
        live[0] = True
    return live


def set_units(mask: Mask, group: Group, units: torch.Tensor, value: bool, params: set[str] | None = None) -> None:
    """Set, in place, every entry of ``mask`` that belongs to one of ``units`` (a 1-D index tensor) to ``value``."""
    chosen = torch.zeros(group.size, dtype=torch.bool)
    chosen[units] = True
    for s in group.slices:
        if s.param not in mask or (params is not None and s.param not in params):
            continue
        pick = chosen[torch.from_numpy(s.unit)].numpy()
        if not pick.any():
            continue
        idx = torch.from_numpy(s.index[pick])
        view = mask[s.param].movedim(s.axis, 0)
        view[idx] = value


def expand(mask: Mask, structure: Structure, params: dict[str, torch.Tensor]) -> Mask:
    """A neuron-granularity mask over weights → the same mask plus the biases and norm parameters of pruned units.

    A unit is pruned when every weight it owns (its incoming and outgoing slices in the mask) is pruned; then its
    bias and norm parameters are zeroed too, so that it outputs exactly zero and export removes it exactly.
    """
    out = dict(mask)
    for g in structure.groups:
        alive = per_unit(mask, g, "out", "any") | per_unit(mask, g, "in", "any")
        dead = torch.nonzero(~alive, as_tuple=True)[0]
        others = {s.param for s in g.slices if s.param not in mask}
        if len(dead) == 0 or not others:
            continue
        for name in others:
            if name not in out:
                out[name] = torch.ones_like(params[name], dtype=torch.bool)
            else:
                out[name] = out[name].clone()
        set_units(out, g, dead, False, others)
    return out


def shuffle_units(mask: Mask, structure: Structure, gen: torch.Generator) -> Mask:
    """Relabel the units of every group by a random permutation: every slice of a unit moves together, so a
    structured mask stays structured and keeps its per-layer and per-group counts."""
    out = {name: m.clone() for name, m in mask.items()}
    for g in structure.groups:
        perm = torch.randperm(g.size, generator=gen).numpy()
        for s in g.slices:
            if s.param not in out:
                continue
            order = np.lexsort((s.index, s.unit))
            counts = np.bincount(s.unit, minlength=g.size)
            if counts.min() != counts.max():
                continue  # units of unequal width on this slice: leave it (cannot happen for Torch-Pruning groups)
            table = s.index[order].reshape(g.size, -1)  # row u: the positions of unit u
            current = out[s.param].clone().movedim(s.axis, 0)
            view = out[s.param].movedim(s.axis, 0)
            view[torch.from_numpy(table.ravel())] = current[torch.from_numpy(table[perm].ravel())]
    return out
