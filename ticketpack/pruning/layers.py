"""Layer types: how each kind of layer's units (hidden neurons, channels, embedding dimensions) lie in its tensors.

Torch-Pruning's dependency graph says which layers share units (``ticketpack.pruning.structure``); a layer type
says, for one ``nn.Module`` class, which of its parameters a mask covers and along which axis of which tensors its
output and input units lie. Neuron granularity masks those slices, and compaction cuts them. Every layer type
ticketpack knows is one registered :class:`LayerType` in :data:`LAYERS`, and a user teaches it their own layer the
same way (an entry also makes the layer's ``weights`` prunable, at weight granularity too)::

    from ticketpack.pruning.layers import LayerType, register_layer

    @register_layer
    class ScaledLinearUnits(LayerType):
        module = ScaledLinear                               # the user's nn.Module class
        weights = ("weight",)                               # what a mask covers
        out = (("weight", 0), ("bias", 0), ("scale", 0))    # (tensor, axis): output unit j is index j there
        inp = (("weight", 1),)                              # input unit j

A module's layer type is its class's entry, else the entry of its nearest base class; a layer with parameters of
its own and no entry stays dense, named with the reason. For a user's layer, Torch-Pruning gets a pruner made
from the entry (its ``customized_pruners``), so the graph follows units through it and compaction cuts it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from ticketpack.core.registry import Registry
from ticketpack.pruning.norms import LiveLayerNorm

Side = Literal["out", "in"]
Axes = tuple[tuple[str, int], ...]


class LayerType:
    """How the units of one ``nn.Module`` class lie in its tensors (subclass it and :func:`register_layer`).

    ``out``: ``(tensor name, axis)`` pairs where output unit ``j`` is index ``j``; ``inp``: the same for input units,
    or ``None`` when the input units *are* the output units (a norm, a per-channel scale). Tensor names are the
    module's own parameters or buffers (buffers are cut at compaction, never masked); a name the module sets to
    ``None`` is skipped. Override :meth:`why_not` to refuse some configurations with a reason, and :meth:`resize`
    to update attributes (such as ``out_features``) when compaction cuts units.
    """

    module: ClassVar[type[nn.Module]]
    weights: ClassVar[tuple[str, ...]] = ()
    out: ClassVar[Axes] = ()
    inp: ClassVar[Axes | None] = ()
    #: Torch-Pruning has a pruner of its own for this class (the built-ins): no customized pruner is handed to it.
    torch_pruning_builtin: ClassVar[bool] = False

    @property
    def makes_units(self) -> bool:
        """Whether a unit group is named after this layer: its output units are new (a linear layer, a conv), not
        its input's passed through (a norm)."""
        return self.inp is not None

    def axes(self, side: Side) -> Axes:
        return self.out if side == "out" or self.inp is None else self.inp

    def prunable(self, module: nn.Module) -> list[str]:
        """The names of the module's own weights a mask covers."""
        return [w for w in self.weights if isinstance(getattr(module, w, None), nn.Parameter)]

    def why_not(self, module: nn.Module, name: str) -> str | None:
        """Why the units of ``module`` (named ``name`` in the model) cannot be removed exactly, or None."""
        return None

    def slices(self, module: nn.Module, side: Side) -> list[tuple[str, int, Side]]:
        """``(parameter, axis, side)`` of each parameter slice that ``side``'s units occupy (``side`` is how
        Torch-Pruning reached the layer: through its output units or its input units)."""
        return [(p, a, side) for p, a in self.axes(side) if isinstance(getattr(module, p, None), nn.Parameter)]

    def units(self, module: nn.Module, side: Side) -> int | None:
        """How many units ``side`` has (None: none to prune)."""
        for p, a in self.axes(side):
            t = getattr(module, p, None)
            if isinstance(t, torch.Tensor):
                return int(t.shape[a])
        return None

    def resize(self, module: nn.Module, side: Side, keep: torch.Tensor) -> None:
        """Keep only the units ``keep`` (sorted indices) of ``side``, in place."""
        for p, a in self.axes(side):
            t = getattr(module, p, None)
            if isinstance(t, nn.Parameter):
                setattr(module, p, nn.Parameter(t.detach().index_select(a, keep.to(t.device)).clone(),
                                                requires_grad=t.requires_grad))
            elif isinstance(t, torch.Tensor):
                setattr(module, p, t.index_select(a, keep.to(t.device)).clone())

    def period(self, module: nn.Module, side: Side) -> int | None:
        """For a layer whose ``side`` units repeat in blocks (a grouped convolution: channel ``c`` of each group),
        the block length: units ``c`` and ``c + k * period`` are then pruned together. None: every unit alone."""
        return None

    def under_mask(self, module: nn.Module, name: str, mask: dict[str, torch.Tensor]) -> nn.Module | None:
        """The module to run in place of ``module`` while ``mask`` (the training mask, over any of the model's
        parameters) holds, or None to keep it: for a layer that computes differently once some of its units are
        pruned (a LayerNorm's statistics). Called again for each new mask; the replacement's own entry then updates it."""
        return None

    def torch_pruner(self) -> Any:
        """A Torch-Pruning pruner (``tp.pruner.BasePruningFunc``) that cuts this layer by :meth:`units` and
        :meth:`resize`; None for the layers Torch-Pruning knows itself."""
        if self.torch_pruning_builtin:
            return None
        return _pruner_for(self)


LAYERS: Registry[type[LayerType]] = Registry("layer type")


def _name_of(cls: type) -> str:
    if getattr(nn, cls.__qualname__, None) is cls:
        return f"torch.nn.{cls.__qualname__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def register_layer(cls: type[LayerType]) -> type[LayerType]:
    """Register a :class:`LayerType` subclass for the ``nn.Module`` class its ``module`` names (usable as a
    decorator); its name in :data:`LAYERS` is that class's qualified name."""
    if not (isinstance(cls, type) and issubclass(cls, LayerType)):
        raise TypeError(f"register_layer takes a LayerType subclass, got {cls!r}")
    module = getattr(cls, "module", None)
    if not (isinstance(module, type) and issubclass(module, nn.Module)):
        raise TypeError(f"{cls.__name__} needs a class attribute like module = MyLayer (an nn.Module class)")
    for n in LAYERS.in_order():
        if LAYERS.get(n).module is module:
            raise ValueError(f"layer type {_name_of(module)!r} is registered twice ({n}: {LAYERS.get(n).__name__})")
    where = lambda axes: ", ".join(f"{t}[axis {a}]" for t, a in axes) or "none"  # noqa: E731
    doc = cls.__dict__.get("__doc__") or (
        f"{_name_of(module)}: masks {', '.join(cls.weights) or 'no weight'}; output units along {where(cls.out)}; "
        f"input units {'the output units' if cls.inp is None else 'along ' + where(cls.inp)}.")
    LAYERS.register(_name_of(module), cls, doc=doc)
    return cls


def layer_type(module: nn.Module | type[nn.Module]) -> LayerType | None:
    """The registered layer type of ``module`` (an instance or a class): its class's, else its nearest base's."""
    cls = module if isinstance(module, type) else type(module)
    by_class = {entry.module: entry for entry in map(LAYERS.get, LAYERS.in_order())}
    for base in cls.__mro__:
        if base in by_class:
            return by_class[base]()
    return None


def customized_pruners(modules: Sequence[nn.Module]) -> dict[type, Any]:
    """Torch-Pruning's ``customized_pruners`` for the user-registered layers among ``modules``: by exact class, which
    is how Torch-Pruning looks them up."""
    out: dict[type, Any] = {}
    for m in modules:
        cls = type(m)
        if cls not in out and (lt := layer_type(cls)) is not None and (pruner := lt.torch_pruner()) is not None:
            out[cls] = pruner
    return out


def root_types() -> tuple[type[nn.Module], ...]:
    """The classes whose output units name a group (Torch-Pruning's ``root_module_types``)."""
    return tuple(e.module for e in map(LAYERS.get, LAYERS.in_order()) if e().makes_units)


def _pruner_for(lt: LayerType) -> Any:
    from torch_pruning.pruner.function import BasePruningFunc

    def cut(side: Side):
        def prune(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
            n = lt.units(layer, side) or 0
            gone = {int(i) for i in idxs}
            lt.resize(layer, side, torch.tensor([i for i in range(n) if i not in gone], dtype=torch.int64))
            return layer
        return prune

    def count(side: Side):
        return lambda self, layer: lt.units(layer, side)

    body: dict[str, Any] = {"TARGET_MODULES": None, "prune_out_channels": cut("out"), "get_out_channels": count("out")}
    if lt.inp is None:  # the same function both ways: Torch-Pruning's sign that input and output units are one
        body.update(prune_in_channels=body["prune_out_channels"], get_in_channels=body["get_out_channels"])
    else:
        body.update(prune_in_channels=cut("in"), get_in_channels=count("in"))
    return type(f"{type(lt).__name__}Pruner", (BasePruningFunc,), body)()


# ------------------------------------------------------------------------------------------ the built-in layer types


class _Builtin(LayerType):
    torch_pruning_builtin = True


@register_layer
class LinearUnits(_Builtin):
    """``nn.Linear``: output units are weight rows and bias entries, input units weight columns."""

    module = nn.Linear
    weights = ("weight",)
    out = (("weight", 0), ("bias", 0))
    inp = (("weight", 1),)


class _ConvUnits(_Builtin):
    """A 1-d or 2-d convolution: output channels are weight axis 0 and the bias, input channels weight axis 1. A
    depthwise convolution's input channels are its output channels. A grouped one's units are places in its groups
    (:meth:`LayerType.period`): channel ``c`` of every group goes together, so each group keeps as many channels."""

    weights = ("weight",)
    out = (("weight", 0), ("bias", 0))
    inp = (("weight", 1),)

    def why_not(self, module: nn.Module, name: str) -> str | None:
        if module.groups > 1 and not _depthwise(module) and 1 in (self.period(module, "in"), self.period(module, "out")):
            return f"grouped convolution {name} (groups={module.groups}) has one channel per group on one side"
        return None

    def slices(self, module: nn.Module, side: Side) -> list[tuple[str, int, Side]]:
        if _depthwise(module):
            return super().slices(module, "out")  # in and out units are the same
        return super().slices(module, side)

    def period(self, module: nn.Module, side: Side) -> int | None:
        if module.groups == 1 or _depthwise(module):
            return None
        return (module.in_channels if side == "in" else module.out_channels) // module.groups


def _depthwise(module: nn.Module) -> bool:
    return module.groups > 1 and module.groups == module.in_channels == module.out_channels


@register_layer
class Conv1dUnits(_ConvUnits):
    module = nn.Conv1d


@register_layer
class Conv2dUnits(_ConvUnits):
    module = nn.Conv2d


@register_layer
class BatchNormUnits(_Builtin):
    """BatchNorm: its units are its input's, with the affine weight and bias (when affine) along axis 0."""

    module = nn.modules.batchnorm._BatchNorm
    out = (("weight", 0), ("bias", 0))
    inp = None


@register_layer
class EmbeddingUnits(_Builtin):
    """``nn.Embedding``: its units are the embedding dimensions (weight axis 1)."""

    module = nn.Embedding
    weights = ("weight",)
    out = (("weight", 1),)
    inp = None
    makes_units = True


@register_layer
class PReLUUnits(_Builtin):
    """``nn.PReLU``: one slope per unit (a single shared slope has no units)."""

    module = nn.PReLU
    out = (("weight", 0),)
    inp = None

    def slices(self, module: nn.Module, side: Side) -> list[tuple[str, int, Side]]:
        return super().slices(module, side) if module.num_parameters > 1 else []


class _NormalizesUnits(_Builtin):
    """A norm over the units: removing a unit, even an all-zero one, changes its statistics, so it is refused."""

    inp = None

    def why_not(self, module: nn.Module, name: str) -> str | None:
        return f"{type(module).__name__} {name} normalizes over these units (removing one changes its statistics)"


@register_layer
class LayerNormUnits(_Builtin):
    """``nn.LayerNorm`` over one dimension, with an affine weight: its units are its input's. A pruned unit's weight
    and bias are masked to zero, and while a mask prunes some of its units it normalizes over the live ones only
    (:class:`ticketpack.pruning.norms.LiveLayerNorm`), which is what the compacted LayerNorm computes."""

    module = nn.LayerNorm
    out = (("weight", 0), ("bias", 0))
    inp = None

    def why_not(self, module: nn.Module, name: str) -> str | None:
        if type(module).forward is not nn.LayerNorm.forward:  # e.g. torchvision's LayerNorm2d permutes around it
            return f"{type(module).__name__} {name} is a LayerNorm with a forward of its own (register its layer type)"
        if len(module.normalized_shape) != 1:
            return f"LayerNorm {name} normalizes over {len(module.normalized_shape)} dimensions (one is supported)"
        if not isinstance(module.weight, nn.Parameter):
            return f"LayerNorm {name} has no affine weight, so a removed unit would not stay zero after it"
        return None

    def under_mask(self, module: nn.Module, name: str, mask: dict[str, torch.Tensor]) -> nn.Module | None:
        live = _weight_mask(mask, name)
        if live is None or bool(live.all()) or self.why_not(module, name) is not None:
            return None
        return LiveLayerNorm(module, live)


def _weight_mask(mask: dict[str, torch.Tensor], name: str) -> torch.Tensor | None:
    """The mask of module ``name``'s weight, if the mask covers it."""
    return mask.get(f"{name}.weight" if name else "weight")


@register_layer
class LiveLayerNormUnits(LayerType):
    """:class:`~ticketpack.pruning.norms.LiveLayerNorm`: a LayerNorm's units, plus its ``live`` flags, which
    compaction cuts with them."""

    module = LiveLayerNorm
    out = (("weight", 0), ("bias", 0), ("live", 0))
    inp = None

    def under_mask(self, module: nn.Module, name: str, mask: dict[str, torch.Tensor]) -> nn.Module | None:
        live = _weight_mask(mask, name)
        module.set_live(torch.ones_like(module.live) if live is None else live)
        return None

    def resize(self, module: nn.Module, side: Side, keep: torch.Tensor) -> None:
        super().resize(module, side, keep)
        module.normalized_shape = (len(keep),)


@register_layer
class GroupNormUnits(_NormalizesUnits):
    module = nn.GroupNorm


@register_layer
class InstanceNormUnits(_NormalizesUnits):
    module = nn.modules.instancenorm._InstanceNorm


@register_layer
class MultiheadAttentionUnits(_Builtin):
    """``nn.MultiheadAttention``: its input projection is pruned at weight granularity. Its units are the residual
    width it reads and writes: the input projection's columns consume them, the output projection's rows and bias
    produce them. Its heads are a group of their own (``ticketpack.pruning.structure``). Compaction first replaces
    it by :class:`ticketpack.export.compact.PrunedAttention`, which holds any width and any number of heads."""

    module = nn.MultiheadAttention
    weights = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")
    inp = None

    def why_not(self, module: nn.Module, name: str) -> str | None:
        if not module._qkv_same_embed_dim:
            return f"MultiheadAttention {name} has separate key and value widths (kdim, vdim)"
        if module.bias_k is not None or module.add_zero_attn:
            return f"MultiheadAttention {name} adds a key/value bias or a zero attention (add_bias_kv, add_zero_attn)"
        return None

    def slices(self, module: nn.Module, side: Side) -> list[tuple[str, int, Side]]:
        out: list[tuple[str, int, Side]] = [("in_proj_weight", 1, "in"), ("out_proj.weight", 0, "out")]
        return out + ([("out_proj.bias", 0, "out")] if module.out_proj.bias is not None else [])


__all__ = ["LAYERS", "LayerType", "customized_pruners", "layer_type", "register_layer", "root_types"]
