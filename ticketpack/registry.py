"""Moved to :mod:`ticketpack.core.registry`; this address works until ticketpack 0.2, with a DeprecationWarning."""
from ticketpack.core.moved import alias

alias(__name__, "ticketpack.core.registry")
