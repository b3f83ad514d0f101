"""Every seed ticketpack uses is derived here from the one the user gave (``--seed``), by labels that say what it
is for: ``derive_seed(seed, "prune", round)`` in a search, ``derive_seed(seed, "transfer", "init", s)`` in a
transfer job. The same labels give the same seed on every machine and in every process, so a job run again, alone
or in another worker, draws what it drew the first time."""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, *parts: object) -> int:
    """A stable 63-bit seed from a base seed and labels (same inputs, same seed, on every machine)."""
    digest = hashlib.sha256(":".join(map(str, (seed, *parts))).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
