"""Exact compaction of any masked torch model: what the mask made dead is removed for real.

1. Units that output a constant (all producing weights zero) are folded into their consumers' biases when every
   consumer is a linear layer. Units (hidden neurons, conv channels, embedding dimensions) that are exactly dead,
   found and removed with Torch-Pruning's dependency graph (:func:`prune_dead_units`): the layers shrink.
   Dead attention heads of an ``nn.MultiheadAttention``: the module is replaced by a :class:`PrunedAttention`
   with fewer heads.
2. Inputs that no weight reads: an ``Embedding`` whose rows are mostly zero keeps only its live rows, behind an
   id remap (dropped ids read a zero row); a ``Linear`` whose input columns are mostly zero keeps only its live
   columns, behind a gather of its input (only where it reads the model's input: on hidden activations the gather
   costs more than it saves). Both replace the module with an equivalent one, chosen by module type,
   and only when at least ``min_input_saving`` of the rows or columns go (a gather or remap costs time too).

The compacted model computes the same logits as the masked one up to float rounding; export checks that on the
test split before anything is written.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ticketpack.core.errors import TicketpackError
from ticketpack.models.probe import run_hooked
from ticketpack.models.swap import replace_module
from ticketpack.pruning.layers import (
    LayerType,
    MultiheadAttentionUnits,
    Side,
    register_layer,
)
from ticketpack.pruning.norms import plain_norms
from ticketpack.pruning.structure import live_units, trace

MIN_INPUT_SAVING = 0.125


class RemappedEmbedding(nn.Module):
    """An embedding table that keeps only some rows: id ``kept[i]`` reads row ``i + 1``, every other id row 0 (zeros).

    The remap holds one int32 per id of the full vocabulary (2^20 for the default text model), but the exported file
    stores only one bit per id: its nonzero entries are 1, 2, ..., k in order, which
    :func:`ticketpack.runtime.storage.rank_encode` rebuilds from the bits at load."""

    def __init__(self, table: nn.Embedding, kept: torch.Tensor) -> None:
        super().__init__()
        w = table.weight.detach()
        self.weight = nn.Parameter(torch.cat([torch.zeros(1, w.shape[1], dtype=w.dtype), w[kept]]), requires_grad=False)
        remap = torch.zeros(table.num_embeddings, dtype=torch.int32)
        remap[kept] = torch.arange(1, len(kept) + 1, dtype=torch.int32)
        self.register_buffer("remap", remap)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(self.remap[ids], self.weight)


class GatheredLinear(nn.Module):
    """A linear layer that reads only the input features ``kept`` (the others have all-zero weight columns)."""

    def __init__(self, linear: nn.Linear, kept: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(linear.weight.detach()[:, kept].clone(), requires_grad=False)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        self.register_buffer("kept", kept.to(torch.int64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.index_select(-1, self.kept), self.weight, self.bias)


class PrunedAttention(nn.Module):
    """``nn.MultiheadAttention`` (eval mode) with only the heads ``kept``: the same computation, fewer heads.

    Parameters keep their names (``in_proj_weight``: the kept q, k, v rows; ``out_proj.weight``: the kept columns),
    and forward takes the same arguments. A removed head was dead (its q, k, v rows and biases zero, so it added
    zero; or its output columns zero), so the output is the same up to float rounding.
    """

    def __init__(self, mha: nn.MultiheadAttention, kept: torch.Tensor) -> None:
        super().__init__()
        e, hd = mha.embed_dim, mha.head_dim
        rows = (kept[:, None] * hd + torch.arange(hd)[None, :]).flatten()
        qkv = torch.cat([rows, rows + e, rows + 2 * e])
        self.in_proj_weight = nn.Parameter(mha.in_proj_weight.detach()[qkv].clone(), requires_grad=False)
        self.in_proj_bias = None
        if mha.in_proj_bias is not None:
            self.in_proj_bias = nn.Parameter(mha.in_proj_bias.detach()[qkv].clone(), requires_grad=False)
        self.out_proj = nn.Linear(len(rows), e, bias=mha.out_proj.bias is not None)
        self.out_proj.weight = nn.Parameter(mha.out_proj.weight.detach()[:, rows].clone(), requires_grad=False)
        if mha.out_proj.bias is not None:
            self.out_proj.bias = nn.Parameter(mha.out_proj.bias.detach().clone(), requires_grad=False)
        self.register_buffer("kept", kept.to(torch.int64))
        self.heads, self.head_dim, self.original_heads = len(kept), hd, mha.num_heads
        self.batch_first = mha.batch_first

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        same = query is key and key is value
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        h, hd = self.heads, self.head_dim
        d = h * hd
        # sequence lengths as Python ints: an exported graph has them fixed (only its batch is dynamic), and this
        # spares it the Shape → Gather → Concat ops that computed them per call (193 → 105 nodes on the ViT)
        length, src = int(query.shape[1]), int(key.shape[1])
        w, b = self.in_proj_weight, self.in_proj_bias
        if same:  # one projection (one weight in the graph), read as (3, heads, head_dim) as nn.MultiheadAttention
            # does: a split of it would loop Torch-Pruning's index mapping
            qkv = F.linear(query, w, b).reshape(-1, length, 3, h, hd).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
        else:
            bq, bk, bv = b.chunk(3) if b is not None else (None, None, None)
            q = F.linear(query, w[:d], bq).reshape(-1, length, h, hd).transpose(1, 2)
            k = F.linear(key, w[d : 2 * d], bk).reshape(-1, src, h, hd).transpose(1, 2)
            v = F.linear(value, w[2 * d :], bv).reshape(-1, src, h, hd).transpose(1, 2)
        scores = (q * self.head_dim ** -0.5) @ k.transpose(-2, -1)
        if is_causal and attn_mask is None:
            attn_mask = torch.ones(length, src, dtype=torch.bool, device=q.device).triu(1)
        for extra in (attn_mask, None if key_padding_mask is None else key_padding_mask[:, None, None, :]):
            if extra is None:
                continue
            if extra.dim() == 3:  # (batch × original heads, L, S): keep the rows of the kept heads
                extra = extra.reshape(-1, self.original_heads, length, src)[:, self.kept]
            scores = scores.masked_fill(extra, float("-inf")) if extra.dtype == torch.bool else scores + extra
        attn = scores.softmax(dim=-1)
        out = F.linear((attn @ v).transpose(1, 2).reshape(-1, length, d), self.out_proj.weight, self.out_proj.bias)
        if not self.batch_first:
            out = out.transpose(0, 1)
        weights = (attn.mean(dim=1) if average_attn_weights else attn) if need_weights else None
        return out, weights


class PrunedAttentionUnits(LayerType):
    """:class:`PrunedAttention`: its units are the residual width it reads (input projection columns) and writes
    (output projection rows and bias), cut by compaction like any user layer (a Torch-Pruning customized pruner)."""

    module = PrunedAttention
    weights = ("in_proj_weight",)
    inp = None

    def slices(self, module: nn.Module, side: Side) -> list[tuple[str, int, Side]]:
        return MultiheadAttentionUnits().slices(module, side)

    def units(self, module: nn.Module, side: Side) -> int | None:
        return int(module.in_proj_weight.shape[1])

    def resize(self, module: nn.Module, side: Side, keep: torch.Tensor) -> None:
        cut = lambda t, axis: nn.Parameter(t.detach().index_select(axis, keep).clone(), requires_grad=False)  # noqa: E731
        module.in_proj_weight = cut(module.in_proj_weight, 1)
        module.out_proj.weight = cut(module.out_proj.weight, 0)
        if module.out_proj.bias is not None:
            module.out_proj.bias = cut(module.out_proj.bias, 0)
        module.out_proj.out_features = len(keep)


register_layer(PrunedAttentionUnits)


def compact_heads(model: nn.Module, structure) -> dict[str, list[int]]:
    """Replace every ``nn.MultiheadAttention`` by a :class:`PrunedAttention` with its live heads only (all of them
    when none is dead: a PrunedAttention's residual width can then be cut, a MultiheadAttention's cannot)."""
    values = {k: v.detach() for k, v in model.named_parameters()}
    heads = {g.root: g for g in structure.groups if g.kind == "heads"}
    summary: dict[str, list[int]] = {}
    for name, m in list(model.named_modules()):
        if not isinstance(m, nn.MultiheadAttention) or MultiheadAttentionUnits().why_not(m, name) is not None:
            continue
        alive = live_units(values, heads[name]) if name in heads else torch.ones(m.num_heads, dtype=torch.bool)
        if name in heads:
            summary[heads[name].name] = [int(alive.sum()), m.num_heads]
        replace_module(model, name, PrunedAttention(m, torch.nonzero(alive, as_tuple=True)[0]))
    return summary


def fold_constant_units(model: nn.Module, example: torch.Tensor, structure) -> int:
    """Fold units that output a constant into their consumers' biases; return how many units were folded.

    A unit whose producing weights are all zero outputs a constant (its bias through whatever follows, e.g.
    relu(b)), whatever the input. When every consumer of its group is a linear layer, that constant is added to
    the consumers' biases (``b' = b + W[:, cols] @ c``, with ``c`` read at the consumers' inputs) and their columns
    are zeroed: the unit is then unused, and :func:`prune_dead_units` removes it exactly.
    """
    from ticketpack.pruning.structure import _is_layer_weight, per_unit

    modules = dict(model.named_modules())
    values = {k: v.detach() for k, v in model.named_parameters()}
    todo = []
    for g in structure.groups:
        ins = [s for s in g.slices if s.side == "in"]
        owners = [modules.get(s.param.rpartition(".")[0]) for s in ins]
        if g.kind != "units" or not ins or any(not isinstance(m, nn.Linear) or s.axis != 1 for m, s in zip(owners, ins)):
            continue
        if any(m.bias is None for m in owners):
            continue
        weights = {s.param: values[s.param] for s in g.slices if s.side == "out" and _is_layer_weight(modules, s.param)}
        constant = ~per_unit(weights, g, "out", "any") & per_unit(values, g, "in", "any")
        if weights and constant.any():
            todo.append((g, constant, ins))
    if not todo:
        return 0
    seen: dict[str, torch.Tensor] = {}
    wanted = {s.param.rpartition(".")[0] for _, _, ins in todo for s in ins}
    run_hooked(model, example, [modules[n].register_forward_pre_hook(
        lambda _m, inp, n=n: seen.__setitem__(n, inp[0].detach())) for n in wanted])
    folded = 0
    with torch.no_grad():
        for g, constant, ins in todo:
            for s in ins:
                name = s.param.rpartition(".")[0]
                if name not in seen:
                    continue
                layer, x = modules[name], seen[name]
                pick = constant[torch.from_numpy(s.unit)].numpy()
                cols = torch.from_numpy(s.index[pick])
                c = x.reshape(-1, x.shape[-1])[:, cols]
                if not bool((c == c[:1]).all()):
                    continue  # not constant after all (an op between the units and this layer): leave it
                layer.bias += (layer.weight[:, cols].double() @ c[0].double()).to(layer.bias.dtype)
                layer.weight[:, cols] = 0.0
                folded += int(pick.sum())
    return folded


def _called_modules(model: nn.Module, example: torch.Tensor) -> tuple[set[str], set[str]]:
    """Names of the modules whose forward runs (a MultiheadAttention's out_proj is read, never called), and of
    those that read the model's input itself (the input or a view of it, such as a flatten)."""
    called: set[str] = set()
    on_input: set[str] = set()
    storage = example.untyped_storage().data_ptr()

    def hook(name: str):
        def fn(_m, inputs):
            called.add(name)
            if inputs and isinstance(inputs[0], torch.Tensor) and inputs[0].untyped_storage().data_ptr() == storage:
                on_input.add(name)
        return fn

    run_hooked(model, example, [m.register_forward_pre_hook(hook(n)) for n, m in model.named_modules()])
    return called, on_input


def compact_inputs(model: nn.Module, example: torch.Tensor, prunable: list[str],
                   min_input_saving: float = MIN_INPUT_SAVING) -> dict[str, list[int]]:
    """Drop dead embedding rows and dead linear input columns (see the module docstring); ``{kind:name: [kept, was]}``.

    Linear layers only where they read the model's input: on hidden activations a ``Gather`` of columns costs
    ONNX Runtime more than the multiply-accumulates it saves (measured on convnet's `fc`: docs/benchmarks.md,
    "Export: are exported tickets smaller and faster?", the convnet finding).
    """
    called, on_input = _called_modules(model, example)
    summary: dict[str, list[int]] = {}
    for name, m in list(model.named_modules()):
        if name not in called or f"{name}.weight" not in prunable:
            continue
        if not isinstance(m, nn.Embedding) and not (isinstance(m, nn.Linear) and name in on_input):
            continue
        w = m.weight.detach()
        axis = 1 if isinstance(m, nn.Embedding) else 0  # reduce over: embedding rows / linear columns
        alive = (w != 0).any(dim=axis)
        n, dead = alive.numel(), int((~alive).sum())
        if dead < min_input_saving * n or dead == n:
            continue
        kept = torch.nonzero(alive, as_tuple=True)[0]
        if isinstance(m, nn.Embedding):
            if dead * w.shape[1] * w.element_size() <= n / 8:  # the stored remap (a bit per id) would cost more
                continue
            replace_module(model, name, RemappedEmbedding(m, kept))
            summary[f"vocabulary:{name}.weight"] = [len(kept), n]
        else:
            replace_module(model, name, GatheredLinear(m, kept))
            summary[f"features:{name}.weight"] = [len(kept), n]
    return summary


def prune_dead_units(model: nn.Module, example: torch.Tensor, output_layer: str, prunable: list[str]) -> dict[str, list[int]]:
    """Physically remove, in place, every unit that is exactly dead: all it produces is zero (weights, bias, norm
    parameters) or nothing consumes it (all its outgoing weight columns are zero). Return ``{group: [kept, was]}``.

    At least one unit of every group stays, so that no tensor has a zero-size axis.
    """
    summary: dict[str, list[int]] = {}
    cut = None  # the group cut last: the model must still run without its units
    for step in range(1000):
        try:
            structure = trace(model, example, output_layer, prunable, check=step == 0)
        except TicketpackError as exc:
            if cut is None:
                raise
            raise TicketpackError(
                f"compact: the model no longer runs once {cut} lost units ({exc}); its forward may keep their "
                "number itself (torchvision's VisionTransformer keeps hidden_dim): export it with `format` dense or "
                "sparse instead") from None
        values = {k: v.detach() for k, v in model.named_parameters()}
        done = True
        for g, tp_group in zip(structure.groups, structure._tp_groups):
            if tp_group is None:
                continue  # attention heads: compact_heads
            dead = ~live_units(values, g)
            if not dead.any():
                summary.setdefault(g.name, [g.size, g.size])
                continue
            idxs = torch.nonzero(dead, as_tuple=True)[0].numpy()
            if g.members is not None:  # units are places in a grouped convolution's groups: their channels
                idxs = np.flatnonzero(np.isin(g.members, idxs))
            idxs = idxs.tolist()
            root = tp_group[0].dep
            with torch.no_grad():
                structure._graph.get_pruning_group(root.target.module, root.handler, idxs).prune()
            was = summary.get(g.name, [g.size, g.size])[1]
            summary[g.name] = [g.size - int(dead.sum()), was]
            cut, done = g.name, False
            break  # the graph changed: trace again
        if done:
            return summary
    raise TicketpackError("compaction did not converge")  # pragma: no cover


def compact(model: nn.Module, example: torch.Tensor, output_layer: str, prunable: list[str],
            min_input_saving: float = MIN_INPUT_SAVING) -> dict[str, list[int]]:
    """Compact ``model`` in place (eval mode); return ``{group root or kind:weight: [kept, original]}``."""
    model.eval()
    summary = compact_heads(model, trace(model, example, output_layer, prunable, check=False))
    fold_constant_units(model, example, trace(model, example, output_layer, prunable, check=False))
    summary.update(prune_dead_units(model, example, output_layer, prunable))
    plain_norms(model)
    summary.update(compact_inputs(model, example, prunable, min_input_saving))
    return summary
