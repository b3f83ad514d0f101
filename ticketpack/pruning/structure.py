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
from ticketpack.pruning.bounded import bounded, failing_layer
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
    #: unit of each root channel when that is not the channel itself (a group through a grouped convolution)
    members: np.ndarray | None = None

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


def _loose_parameter(param: nn.Parameter, idxs: np.ndarray, units: np.ndarray,
                     param_names: dict[nn.Parameter, str], modules: dict[str, nn.Module]) -> list[Slice] | str:
    """The slice of a parameter outside every layer (a ViT's class token and position embedding, ConvNeXt's layer
    scale) that a group reaches, or why it is left out. Taken where Torch-Pruning cuts it, along its last axis that
    is not 1: a tensor with one such axis (a vector, ``(C, 1, 1)``, ``(1, 1, D)``) or a position embedding
    ``(1, N, D)``. A matrix could hold the units along either axis, so it is refused."""
    full = param_names.get(param, "?")
    owner = full.rpartition(".")[0]
    shape = tuple(param.shape)
    wide = [i for i, d in enumerate(shape) if d != 1]
    axis = wide[0] if len(wide) == 1 else (2 if len(shape) == 3 and shape[0] == 1 else None)
    if axis is not None and len(idxs) and int(idxs.max()) < shape[axis]:
        return [Slice(full, axis, idxs, units, "out")]
    if owner and owner in modules:
        return f"layer {owner} ({type(modules[owner]).__name__}) is not mapped"
    return f"parameter {full} {list(shape)} is in no layer ticketpack maps"


def _functional_norm(op: Any) -> str | None:
    """Why an op node of a group is not exact: a normalization computed without a module (``F.layer_norm``,
    ``F.group_norm``, an RMS norm written in plain torch is not detected), whose statistics span the units."""
    grad_fn = str(getattr(op, "_grad_fn", ""))
    if "norm" in grad_fn.lower():
        return f"an op ({grad_fn}) normalizes over these units outside any layer ticketpack maps"
    return None


def trace(model: nn.Module, example: torch.Tensor, output_layer: str, prunable: list[str],
          check: bool = True) -> Structure:
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
        at = failing_layer(model, exc)
        raise TicketpackError(
            f"neuron granularity: Torch-Pruning cannot trace {type(model).__name__}"
            f"{f' at layer {at}' if at else ''}: {type(exc).__name__}: "
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
        got = _group_of(root, g, graph, modules, names, param_names, prunable_set)
        if isinstance(got, Group):
            groups.append(got)
            kept_tp.append(g)
        elif got is not None:
            skipped[root] = got
    for name, m in modules.items():
        heads = _head_group(name, m, prunable_set)
        if heads is not None:
            groups.append(heads)
            kept_tp.append(None)
    for name, m in modules.items():
        if name and layer_type(m) is None and any(True for _ in m.parameters(recurse=False)):
            skipped.setdefault(name, f"layer {name} ({type(m).__name__}) is not mapped: its units stay dense")
    if check:  # compaction's re-traces of a model already checked skip it: two backward passes per group each time
        groups, kept_tp = _checked(model, example, groups, kept_tp, skipped)
    return Structure(tuple(groups), skipped, graph, tuple(kept_tp))


def _checked(model: nn.Module, example: torch.Tensor, groups: list, kept_tp: list, skipped: dict[str, str]):
    """The groups whose channel mapping holds numerically (:mod:`ticketpack.pruning.mapping_check`); the others
    go to ``skipped`` with the reason."""
    from ticketpack.pruning.mapping_check import misread

    was_training = model.training
    model.eval()
    kept, kept_graph = [], []
    try:
        for g, t in zip(groups, kept_tp):
            why = None if g.kind == "heads" else misread(model, example, g)
            if why is None:
                kept.append(g)
                kept_graph.append(t)
            else:
                skipped[g.root] = why
    finally:
        model.train(was_training)
    return kept, kept_graph


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


def _group_of(root: str, g: Any, graph: Any, modules: dict[str, nn.Module], names: dict[nn.Module, str],
              param_names: dict[nn.Parameter, str], prunable: set[str]) -> Group | str | None:
    """One Torch-Pruning group as a :class:`Group`, the reason it cannot be one, or None (nothing to prune)."""
    size = len(g[0].idxs)
    slices: list[Slice] = []
    folds: list[tuple[int, np.ndarray, np.ndarray, str]] = []  # grouped convolutions: (period, idxs, units, param)
    for item in g:
        module = item.dep.target.module
        idxs, units = np.asarray(item.idxs, dtype=np.int64), np.asarray(item.root_idxs, dtype=np.int64)
        if type(module).__name__ == "_OutputOp":
            return "its units are outputs of the model"
        if isinstance(module, nn.Parameter):  # a parameter outside every layer Torch-Pruning knows
            got = _loose_parameter(module, idxs, units, param_names, modules)
        elif not isinstance(module, nn.Module) or module not in names:
            got = _functional_norm(module) or []  # an op node (add, concat, reshape, …): no parameters
        else:
            side: Side = "out" if graph.is_out_channel_pruning_fn(item.dep.handler) else "in"
            got = _slices_of(module, names[module], side, idxs, units)
            lt = layer_type(module)
            if not isinstance(got, str) and lt is not None and (period := lt.period(module, side)):
                folds.append((period, idxs, units, f"{names[module]}.weight" if side == "in" else ""))
        if isinstance(got, str):
            return got
        slices += got
    weights = {s.param for s in slices if _is_layer_weight(modules, s.param)}
    outside = sorted(weights - prunable)
    if outside:
        return f"it holds {outside[0]}, which the mask does not cover"
    members = None
    if folds:
        folded = _fold(root, size, slices, folds)
        if isinstance(folded, str):
            return folded
        slices, members, size = folded
    if size > 1 and slices:
        order = {name: i for i, name in enumerate(modules)}
        producers = [s.param.rpartition(".")[0] for s in slices if s.side == "out" and s.param in weights]
        if producers:  # named after its first producer in the model (a Transformer's width: its token embedding)
            root = min(producers, key=lambda n: order.get(n, len(order)))
        return Group(root, size, tuple(_merge(slices)), members=members)
    return None


def _fold(root: str, size: int, slices: list[Slice], folds: list[tuple[int, np.ndarray, np.ndarray, str]]
          ) -> tuple[list[Slice], np.ndarray, int] | str:
    """A group through a grouped convolution, as units of its groups: channels ``c`` and ``c + k * period`` (the
    same place in each of the convolution's groups) are one unit, so that every group keeps as many channels and
    the convolution's weight (``(out, in / groups, …)``) loses whole columns or rows. Returns the relabelled
    slices, the unit of each root channel and the number of units, or why it cannot be done."""
    members = np.full(size, -1, dtype=np.int64)
    for period, idxs, units, _ in folds:
        want = idxs % period
        if (members[units] >= 0).any() and not np.array_equal(members[units][members[units] >= 0],
                                                               want[members[units] >= 0]):
            return f"grouped convolutions in the group of {root} split its channels into different groups"
        members[units] = want
    if (members < 0).any():
        return f"only some channels of {root} reach its grouped convolution"
    wrapped = {param: period for period, _, _, param in folds if param}
    out = []
    for s in slices:
        index = s.index % wrapped[s.param] if s.param in wrapped and s.side == "in" else s.index
        out.append(Slice(s.param, s.axis, index, members[s.unit], s.side))
    return out, members, int(members.max()) + 1


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
