"""Transparent huge pages for torch's large CPU tensors, asked for by the processes ticketpack starts.

A training step of the default text model gathers and scatters a few thousand random rows of 64 MB tables (the
2^20 × 16 embedding, its two Adam moments, its mask): with 4 KB pages nearly every row costs a TLB miss. PyTorch
backs CPU allocations of 2 MB and more with huge pages when ``THP_MEM_ALLOC_ENABLE=1`` (``madvise``), on kernels
whose ``/sys/kernel/mm/transparent_hugepage/enabled`` allows it. The same weights come out, in less time per step:
the figures are in docs/benchmarks.md, "Huge pages for the text model's tables" (``bench/hugepages_bench.py``,
``bench/results/hugepages.md``).

torch reads the variable once, at the process's first CPU allocation of 2 MB or more, so
:func:`prefer_huge_pages` is called where ticketpack's processes start (the command line, transfer workers),
before any tensor is made. A library user sets it the same way before their first large tensor, or in the shell.
A value the user set is left alone: ``THP_MEM_ALLOC_ENABLE=0`` turns it off.
"""

from __future__ import annotations

import os

ENV = "THP_MEM_ALLOC_ENABLE"


def prefer_huge_pages() -> bool:
    """Ask torch for huge pages unless ``THP_MEM_ALLOC_ENABLE`` is set already; return whether it is on."""
    os.environ.setdefault(ENV, "1")
    return os.environ[ENV] == "1"
