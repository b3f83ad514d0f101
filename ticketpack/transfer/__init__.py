"""`ticketpack transfer`: re-train a ticket on another domain under several initialization strategies, against
dense and random-mask baselines (Desai, Zhan & Aly 2019), and report whether it transfers.

    from ticketpack.transfer import TransferConfig, run_transfer
    report = run_transfer(TransferConfig(ticket="tickets/demo", target="rot45"), "runs/demo-rot45", jobs=2)

``ticketpack.run_transfer`` is the same function.
"""

from ticketpack.transfer.config import DEFAULT_INITS, TrainOverrides, TransferConfig
from ticketpack.transfer.executors import EXECUTORS, Executor, open_executor
from ticketpack.transfer.records import (
    Cell,
    Job,
    JobResult,
    TransferPlan,
    TransferReport,
)
from ticketpack.transfer.report import markdown_table, render
from ticketpack.transfer.run import TransferEvent, TransferRun, run_transfer
from ticketpack.transfer.strategies import INITS, InitStrategy, Start

__all__ = [
    "DEFAULT_INITS", "EXECUTORS", "INITS", "Cell", "Executor", "InitStrategy", "Job", "JobResult", "Start",
    "TrainOverrides", "TransferConfig", "TransferEvent", "TransferPlan", "TransferReport", "TransferRun",
    "markdown_table", "open_executor", "render", "run_transfer",
]

