"""Every file name inside a transfer run directory (``ticketpack transfer --out RUN``): nothing else joins them.

    RUN/plan.json                              TransferPlan: what the run does (written first)
    RUN/jobs/<job_id>/result.json              JobResult, written last: its presence means the job finished
    RUN/jobs/<job_id>/weights.safetensors      trained weights at the best target-val step
    RUN/jobs/<job_id>/mask.safetensors         the mask used (uint8 0/1); absent for `dense`
    RUN/target_ticket/                         the ticket found by IMP on the target (strategy `target-ticket`)
    RUN/report.json, RUN/results.csv, RUN/accuracy_vs_sparsity.png
"""

from pathlib import Path


def plan(run: Path) -> Path: return Path(run) / "plan.json"
def jobs_dir(run: Path) -> Path: return Path(run) / "jobs"
def job_dir(run: Path, job_id: str) -> Path: return jobs_dir(run) / job_id
def job_result(run: Path, job_id: str) -> Path: return job_dir(run, job_id) / "result.json"
def job_weights(run: Path, job_id: str) -> Path: return job_dir(run, job_id) / "weights.safetensors"
def job_mask(run: Path, job_id: str) -> Path: return job_dir(run, job_id) / "mask.safetensors"
def target_ticket(run: Path, given: str | None = None) -> Path:
    """The run's target ticket: the one its plan was given, else the one its own search writes here."""
    return Path(given) if given else Path(run) / "target_ticket"
def report(run: Path) -> Path: return Path(run) / "report.json"
def results_csv(run: Path) -> Path: return Path(run) / "results.csv"
def plot(run: Path) -> Path: return Path(run) / "accuracy_vs_sparsity.png"
