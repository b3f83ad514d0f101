"""Reading a ticket directory: the manifest is validated and every tensor file is checked against its sha256."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from ticketpack.core import paths
from ticketpack.core.errors import FieldError, TicketpackError
from ticketpack.core.fileio import read_versioned, sha256_file
from ticketpack.data.base import DomainData
from ticketpack.models import build, example_input
from ticketpack.models.factory import check_source
from ticketpack.models.tensors import load_tensors
from ticketpack.pruning.granularity import get_granularity
from ticketpack.pruning.mask import Mask, from_file
from ticketpack.pruning.structure import Structure, trace
from ticketpack.search.manifest import (
    SCHEMA_VERSION,
    RoundRecord,
    TensorFile,
    TicketManifest,
)


def load_manifest(root: Path) -> TicketManifest:
    return read_versioned(paths.manifest(root), TicketManifest, SCHEMA_VERSION, "ticket",
                          "create one with `ticketpack search`")


class TicketFiles:
    """A ticket directory's stored tensors: θ0, θk and each round's mask and trained weights, every file checked
    against the sha256 its manifest records."""

    def __init__(self, root: Path, manifest: TicketManifest) -> None:
        self.root = Path(root)
        self.manifest = manifest
        self._kept: dict[str, dict[str, torch.Tensor]] | None = None

    @classmethod
    def load(cls, root: Path, require_complete: bool = True):
        """The ticket in ``root``, its files verified; an unfinished one refused unless not ``require_complete``."""
        manifest = load_manifest(root)
        if require_complete and manifest.status != "complete":
            raise TicketpackError(f"ticket {root} is unfinished; continue it with `ticketpack search --resume --out {root}`")
        ticket = cls(root, manifest)
        ticket.verify()
        return ticket

    def files(self) -> list[TensorFile]:
        m = self.manifest
        out = [m.init_file] + ([m.rewind_file] if m.rewind_file else [])
        for r in m.rounds:
            out += [r.mask_file, r.weights_file]
        return out

    def verify(self) -> None:
        """Refuse the ticket if any tensor file is missing, truncated or changed."""
        for f in self.files():
            path = self.root / f.path
            if not path.exists():
                raise TicketpackError(f"ticket {self.root} is missing {f.path}")
            if sha256_file(path) != f.sha256:
                raise TicketpackError(f"ticket {self.root}: {f.path} fails its sha256 check (changed or truncated)")

    def keep_loaded(self):
        """From now on, read each tensor file once and hand out the same tensors again (for a transfer worker that
        starts dozens of jobs from the same θk and masks): callers must then not change them in place."""
        if self._kept is None:
            self._kept = {}
        return self

    def _once(self, key: str, load):
        """``load()``, or once kept loaded (:meth:`keep_loaded`), what it gave the first time for ``key``."""
        if self._kept is None:
            return load()
        if key not in self._kept:
            self._kept[key] = load()
        return self._kept[key]

    def _tensors(self, f: TensorFile) -> dict[str, torch.Tensor]:
        return self._once(f.path, lambda: load_tensors(self.root / f.path, f.sha256))

    def init_state(self) -> dict[str, torch.Tensor]:
        return self._tensors(self.manifest.init_file)

    def rewind_state(self) -> dict[str, torch.Tensor]:
        f = self.manifest.rewind_file
        return self._tensors(f) if f else self.init_state()

    def record(self, r: int) -> RoundRecord:
        for rec in self.manifest.rounds:
            if rec.round == r:
                return rec
        raise TicketpackError(f"ticket has no round {r}; rounds: {', '.join(str(x.round) for x in self.manifest.rounds)}")

    def mask(self, r: int) -> Mask:
        f = self.record(r).mask_file  # kept as the checked bool mask, not as the uint8 file tensors
        return self._once(f"mask:{f.path}", lambda: from_file(load_tensors(self.root / f.path, f.sha256)))

    def trained_state(self, r: int) -> dict[str, torch.Tensor]:
        return self._tensors(self.record(r).weights_file)


class Ticket(TicketFiles):
    """A loaded ticket: its stored tensors (:class:`TicketFiles`) and the model they belong to: built fresh, its
    unit structure, the mask it trains with, its levels and its data."""

    def build_model(self, allow_changed_model: bool = False) -> nn.Module:
        """A fresh model of the ticket's architecture (weights still to be loaded).

        This runs the model's factory: for a user's ``file.py:factory`` that is the user's own code, refused when
        the file changed since the search unless ``allow_changed_model``.
        """
        m = self.manifest
        check_source(m.model_source, m.config.model, allow_changed_model)
        return build(m.config.model, m.dataset.preprocessing, len(m.dataset.label_names), self.example())

    def example(self):
        """A small input batch of the ticket's input signature (tracing and checks)."""
        return example_input(self.manifest.dataset.preprocessing)

    @property
    def granularity(self) -> str:
        return self.manifest.config.prune.granularity

    @property
    def output_layer(self) -> str:
        m = self.manifest
        return m.output_layer or m.output_names[0].rpartition(".")[0]

    def structure(self, model: nn.Module) -> Structure:
        """The unit groups of ``model`` (built by :meth:`build_model`) over the ticket's prunable weights."""
        return trace(model, self.example(), self.output_layer, list(self.manifest.prunable))

    def training_mask(self, model: nn.Module, mask: Mask | None, structure: Structure | None = None) -> Mask | None:
        """The mask to train (or export) with: under neuron granularity, pruned units lose their biases and norm
        parameters too, so that they output exactly zero. ``structure``: the model's, when the caller traced it."""
        granularity = get_granularity(self.granularity)
        if mask is None or not granularity.needs_structure:
            return mask
        return granularity.training_mask(mask, structure or self.structure(model), dict(model.named_parameters()))

    def resolve_level(self, level: str | int) -> int:
        """A round number (``3``) or a weights-remaining percentage (``20%``, nearest round) → round number."""
        text = str(level).strip()
        rounds = [r.round for r in self.manifest.rounds]
        if re.fullmatch(r"\d+", text):
            r = int(text)
            if r not in rounds:
                raise FieldError(f"`level` {r}: this ticket has no round {r}; rounds: {', '.join(map(str, rounds))}")
            return r
        if m := re.fullmatch(r"(\d+(?:\.\d+)?)%", text):
            want = float(m.group(1)) / 100
            if not 0 < want <= 1:
                raise FieldError(f"`level` {text!r}: a weights-remaining percentage must be above 0% and at most 100%")
            return min(self.manifest.rounds, key=lambda rec: abs(rec.weights_remaining - want)).round
        raise FieldError(f"`level` {text!r} is neither a round number ({', '.join(map(str, rounds))}) nor a percentage "
                         "like 20%", fields=["level"])

    def load_data(self, domain: str, dataset: str | None = None) -> DomainData:
        """A domain of the ticket's dataset (or of ``dataset``, which must share preprocessing and labels)."""
        from ticketpack.data import get

        m = self.manifest
        ds = get(dataset or m.config.dataset)
        return ds.load(domain, m.config.seed, m.config.split, preprocessing=m.dataset.preprocessing,
                       label_names=m.dataset.label_names, labels_of="the ticket")
