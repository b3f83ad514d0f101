"""Model architectures, chosen by name from a registry."""

from ticketpack.models.base import ModelSpec, TicketModel
from ticketpack.models.registry import build, names

__all__ = ["ModelSpec", "TicketModel", "build", "names"]
