"""A user's trained weights: a safetensors file or a PyTorch state dict, loaded without running any code.

``torch.load(weights_only=True)`` refuses every pickled object but tensors and plain containers, so a checkpoint
can hold nothing that executes. A state dict nested under ``state_dict`` or ``model`` (Lightning's and many training
scripts' layout) is taken from there.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from ticketpack.core.errors import FieldError, TicketpackError

_NESTED = ("state_dict", "model", "model_state_dict")


def read_checkpoint(path: Path | str) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors of a checkpoint file and the file's sha256."""
    path = Path(path)
    if not path.is_file():
        raise FieldError(f"`init_weights` {path}: file not found")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if path.suffix == ".safetensors" or data[8:9] == b"{":  # safetensors: 8-byte header length, then JSON
        from safetensors.torch import load

        try:
            return load(data), digest
        except Exception as exc:  # safetensors' own error types
            raise FieldError(f"`init_weights` {path}: not a readable safetensors file ({_first(exc)})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for objects beyond tensors, RuntimeError/EOFError for a cut file
        raise FieldError(
            f"`init_weights` {path}: not a plain state dict of tensors loadable with weights_only=True ({_first(exc)})"
        ) from None
    for key in _NESTED:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                        for k, v in obj.items()):
        raise FieldError(f"`init_weights` {path}: holds {type(obj).__name__}, not a state dict (a mapping of "
                              "parameter names to tensors)")
    return obj, digest


def load_into(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Copy ``state`` into ``model``, refusing missing, unexpected or mis-shaped keys in one line that names them."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    problems = ([f"missing {_few(missing)}"] if missing else []) + \
               ([f"unexpected {_few(unexpected)}"] if unexpected else []) + \
               ([f"mis-shaped {_few(shapes)} (checkpoint vs model)"] if shapes else [])
    if problems:
        raise TicketpackError(f"{where} does not fit the model: {'; '.join(problems)}")
    with torch.no_grad():
        for k, v in own.items():
            v.copy_(state[k].to(v.dtype))


def _few(items: list[str], n: int = 4) -> str:
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def _first(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
