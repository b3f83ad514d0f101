"""Every file name ticketpack reads or writes inside its directories: nothing else joins file names."""

from pathlib import Path


# ticket directory (written by `ticketpack search`)
def manifest(ticket: Path) -> Path: return Path(ticket) / "manifest.json"
def init_weights(ticket: Path) -> Path: return Path(ticket) / "init.safetensors"
def rewind_weights(ticket: Path) -> Path: return Path(ticket) / "rewind.safetensors"
def round_dir(ticket: Path, r: int) -> Path: return Path(ticket) / f"round_{r:02d}"
def round_mask(ticket: Path, r: int) -> Path: return round_dir(ticket, r) / "mask.safetensors"
def round_weights(ticket: Path, r: int) -> Path: return round_dir(ticket, r) / "trained.safetensors"
