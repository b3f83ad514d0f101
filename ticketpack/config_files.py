"""Moved to :mod:`ticketpack.core.config_files`; this address works until ticketpack 0.2, with a DeprecationWarning."""
from ticketpack.core.moved import alias

alias(__name__, "ticketpack.core.config_files")
