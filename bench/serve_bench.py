"""Loopback load test of `ticketpack serve` with a standard HTTP load generator (wrk): does a ticket's speed-up
survive serving?

    python bench/serve_bench.py                       # builds a wide-MLP digits ticket + exports, then measures
    python bench/serve_bench.py --dense d.onnx --ticket t.onnx [--rows 1,32,256] [--concurrency 1,4]

1. Offline: ``session.run`` of each model on the same batch the requests carry, interleaved, 1 ORT thread, on the
   core the server will use → p50 per model and the offline ticket/dense ratio (dense p50 / ticket p50: the model's
   own speed-up; the full predictor path with preprocessing and softmax is recorded beside it).
2. Served: one `ticketpack serve` process (1 worker, 1 ORT thread per run) holds both models, pinned to one core;
   wrk (1 thread, keep-alive connections, a Lua script POSTing the JSON body) runs on the other core. Each cell
   (rows per request × concurrency) runs in blocks alternating between the models (order reversed every other
   block); each model's blocks are pooled: requests/s, p50/p99 latency (median over the blocks), errors.
3. Per cell: server overhead per request = served p50 − offline ``session.run`` p50 (concurrency 1 only: above,
   latency includes queueing), served ratio = ticket req/s ÷ dense req/s, and served/offline = served ratio ÷
   offline ratio (target ≥ 0.8 in every cell; overhead target ≤ 1 ms p50 for a 1-row request).
4. Ablation (1 row, concurrency 1): the same requests with the fast path off (every request through the FastAPI
   route), and with it off and uvloop/httptools hidden (what the server was before the fast path) → where the
   overhead went.

Needs wrk (`apt-get install wrk`; installed here when missing and apt-get is there). Writes
bench/results/serve_bench.json and serve_bench.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

import ticketpack
from ticketpack.core.fileio import atomic_write_text, write_model

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
# wrk: POST the body in $WRK_BODY; at the end, one JSON line with the counts and latency percentiles (µs)
WRK_SCRIPT = r"""
local f = assert(io.open(os.getenv("WRK_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
function done(summary, latency, requests)
  io.write(string.format('\nWRK_RESULT {"requests": %d, "duration_us": %d, "status_errors": %d, ' ..
    '"socket_errors": %d, "p50_us": %d, "p99_us": %d}\n', summary.requests, summary.duration,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout, latency:percentile(50), latency:percentile(99)))
end
"""
# the server as it was before the fast path: every request through FastAPI, asyncio's loop and h11
# (`ticketpack serve` calls ticketpack.serve.app.serve when it runs: this one turns the fast path off)
NO_FAST_PATH = "import functools, ticketpack.serve.app as a; a.serve = functools.partial(a.serve, fast_path=False)"
NO_UVLOOP = "import sys; sys.modules['uvloop'] = None; sys.modules['httptools'] = None"
# the floor: uvicorn (same loop and parser) with an ASGI app that reads the body and answers a fixed 2-byte JSON
BARE_ASGI = """
import sys, uvicorn
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


class ModelEntry(BaseModel):
    name: str
    path: str
    format: str
    architecture: str
    weights_remaining: float
    file_bytes: int
    test_accuracy: float | None


class OfflineRow(BaseModel):
    rows: int
    dense_run_p50_ms: float = Field(description="session.run of the prepared batch.")
    ticket_run_p50_ms: float
    ratio: float = Field(description="dense_run_p50_ms / ticket_run_p50_ms: the offline ticket/dense throughput ratio.")
    dense_predictor_p50_ms: float = Field(description="Predictor.predict_proba on the raw batch (prepare + run + softmax).")
    ticket_predictor_p50_ms: float
    predictor_ratio: float


class LoadRow(BaseModel):
    model: str
    rows_per_request: int
    concurrency: int
    requests: int
    errors: int
    seconds: float
    requests_per_s: float
    rows_per_s: float
    p50_ms: float = Field(description="Median over the blocks of wrk's p50.")
    p99_ms: float = Field(description="Median over the blocks of wrk's p99.")
    overhead_ms: float | None = Field(description="p50_ms − offline session.run p50 (concurrency 1 only).")
    in_app_mean_ms: float | None = Field(None, description="Mean time inside the server per request, from its own "
                                         "latency histogram (/metrics _sum / _count over the blocks): request received "
                                         "to response sent, the model's session.run included.")


class Cell(BaseModel):
    rows_per_request: int
    concurrency: int
    served_ratio: float = Field(description="ticket req/s / dense req/s, pooled over the blocks.")
    block_ratios: list[float] = Field(description="ticket/dense throughput in each block pair: the spread is the noise.")
    offline_ratio: float
    served_over_offline: float
    meets_target: bool = Field(description="served_over_offline >= 0.8.")


class AblationRow(BaseModel):
    server: str
    model: str
    p50_ms: float
    overhead_ms: float
    requests_per_s: float


class ServeBench(BaseModel):
    ticketpack_version: str
    onnxruntime: str
    python: str
    machine: str
    cpu_count: int
    load_generator: str
    server_cpu: int | None
    client_cpu: int | None
    http_stack: str
    ort_threads_per_run: int
    seconds_per_block: float
    blocks: int
    models: list[ModelEntry]
    offline: list[OfflineRow]
    load: list[LoadRow]
    cells: list[Cell]
    ablation: list[AblationRow]
    total_errors: int
    max_overhead_1row_ms: float | None
    small_model: ModelEntry | None = None
    small_model_run_p50_ms: float | None = Field(None, description="Offline session.run p50 of the small model, 1 row.")
    small_model_overhead_ms: float | None = Field(None, description="The server's own overhead: served p50 − offline "
                                                  "session.run p50 for the small model (1 row, concurrency 1).")
    load_average_start: float
    load_average_end: float


# ---- models -------------------------------------------------------------------------------------------------------


def build_models(work: Path, seed: int, hidden: list[int], rounds: int, epochs: int) -> tuple[Path, Path]:
    """A neuron-granularity (structured) ticket of a wide MLP on digits: its dense round 0 and its round ``rounds``
    compacted (the pruned units are gone from the graph, so it is smaller and faster in every batch size)."""
    from ticketpack.export.exporter import export_model
    from ticketpack.search import SearchConfig, search
    from ticketpack.search.artifact import load_manifest

    cfg = SearchConfig.model_validate({
        "dataset": "digits", "source": "clean", "model": {"name": "lenet-300-100", "options": {"hidden": hidden}},
        "train": {"epochs": epochs}, "seed": seed, "threads": 1,
        "prune": {"rate": 0.2, "strategy": "layerwise", "rounds": rounds, "granularity": "neuron"},
    })
    ticket = work / "ticket"
    same = (ticket / "manifest.json").exists() and load_manifest(ticket).config == cfg
    if not same:
        print(f"searching a neuron-granularity ticket of a {hidden} MLP into {ticket} …", file=sys.stderr)
    search(cfg, ticket, resume=same, force=not same and ticket.exists())
    dense, sparse = work / "dense.onnx", work / "ticket.onnx"
    export_model(ticket, dense, level=0, format="dense", threads=1)
    export_model(ticket, sparse, level=rounds, format="compact", threads=1)
    return dense, sparse


def build_small(work: Path, seed: int) -> Path:
    """A small model (lenet-300-100 as built in, one short round): session.run takes a few microseconds, so what a
    request costs beyond it is the server's own overhead."""
    from ticketpack.export.exporter import export_model
    from ticketpack.search import SearchConfig, search
    from ticketpack.search.artifact import load_manifest

    cfg = SearchConfig.model_validate({"dataset": "digits", "source": "clean", "model": {"name": "lenet-300-100"},
                                       "train": {"epochs": 2}, "seed": seed, "threads": 1, "prune": {"rounds": 1}})
    ticket = work / "small-ticket"
    same = (ticket / "manifest.json").exists() and load_manifest(ticket).config == cfg
    search(cfg, ticket, resume=same, force=not same and ticket.exists())
    path = work / "small.onnx"
    export_model(ticket, path, level=0, format="dense", threads=1)
    return path


def describe(name: str, path: Path) -> ModelEntry:
    card = ticketpack.load(path, "cpu", 1).card
    opts = card.model.options.get("hidden") if card.model.options else None
    return ModelEntry(
        name=name, path=str(path), format=card.export.format + ("+int8" if card.export.quantize == "int8" else ""),
        architecture=card.model.name + (f" hidden={opts}" if opts else ""),
        weights_remaining=card.sparsity.weights_remaining, file_bytes=path.stat().st_size,
        test_accuracy=card.metrics.test_accuracy,
    )


def images(n: int) -> np.ndarray:
    from sklearn.datasets import load_digits

    x = load_digits().images.astype(np.float32)
    return np.concatenate([x] * (n // len(x) + 1))[:n]


# ---- offline ------------------------------------------------------------------------------------------------------


def _p50(fn, seconds: float) -> list[float]:
    times, t_end = [], time.perf_counter() + seconds
    while True:
        t = time.perf_counter()
        fn()
        now = time.perf_counter()
        times.append(now - t)
        if now > t_end and len(times) >= 5:
            return times


def offline(dense: Path, ticket: Path, rows: int, seconds: float) -> OfflineRow:
    preds = {"dense": ticketpack.load(dense, "cpu", 1), "ticket": ticketpack.load(ticket, "cpu", 1)}
    raw = images(rows)
    runs = {k: (lambda p=p, x=p.prepare(raw): p.session.run([p.output_name], {p.input_name: x})) for k, p in preds.items()}
    full = {k: (lambda p=p: p.predict_proba(raw)) for k, p in preds.items()}
    run_t: dict[str, list[float]] = {k: [] for k in preds}
    full_t: dict[str, list[float]] = {k: [] for k in preds}
    for k in preds:  # warm-up
        runs[k](), full[k]()
    for rep in range(6):
        for k in (list(preds) if rep % 2 == 0 else list(reversed(preds))):
            run_t[k] += _p50(runs[k], seconds / 12)
            full_t[k] += _p50(full[k], seconds / 24)
    med = {k: 1000 * statistics.median(v) for k, v in run_t.items()}
    fmed = {k: 1000 * statistics.median(v) for k, v in full_t.items()}
    return OfflineRow(
        rows=rows, dense_run_p50_ms=med["dense"], ticket_run_p50_ms=med["ticket"], ratio=med["dense"] / med["ticket"],
        dense_predictor_p50_ms=fmed["dense"], ticket_predictor_p50_ms=fmed["ticket"],
        predictor_ratio=fmed["dense"] / fmed["ticket"],
    )


# ---- load generator -------------------------------------------------------------------------------------------------


def find_wrk() -> tuple[str, str]:
    """wrk's path and version; installs the Debian package when it is missing and apt-get is there (as root)."""
    wrk = shutil.which("wrk")
    if wrk is None and shutil.which("apt-get") and os.geteuid() == 0:
        print("wrk not found: apt-get install -y wrk …", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, stdout=subprocess.DEVNULL)
        wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("this benchmark needs wrk: apt-get install wrk (Debian/Ubuntu) or brew install wrk")
    out = subprocess.run([wrk, "-v"], capture_output=True, text=True)
    version = (out.stdout + out.stderr).strip().splitlines()[0].split(" Copyright")[0]
    return wrk, version


def run_wrk(wrk: str, script: Path, body: Path, url: str, conc: int, seconds: float, cpu: int | None) -> dict:
    cmd = [wrk, "-t1", f"-c{conc}", f"-d{max(1, round(seconds))}s", "--timeout", "30s", "-s", str(script), url]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "WRK_BODY": str(body)})
    m = re.search(r"WRK_RESULT (\{.*\})", out.stdout)
    if out.returncode != 0 or m is None:
        raise SystemExit(f"wrk failed ({out.returncode}): {out.stdout[-800:]} {out.stderr[-800:]}")
    r = json.loads(m.group(1))
    return {"requests": r["requests"], "seconds": r["duration_us"] / 1e6, "errors": r["status_errors"] + r["socket_errors"],
            "p50_ms": r["p50_us"] / 1000, "p99_ms": r["p99_us"] / 1000}


# ---- server -------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status
    except OSError:
        return 0


def start_server(models: dict[str, Path], max_batch: int, cpu: int | None, prelude: str = "") -> tuple[subprocess.Popen, str]:
    port = free_port()
    args = ["serve", *[f"{n}={p}" for n, p in models.items()], "--host", "127.0.0.1", "--port", str(port),
            "--threads", "1", "--provider", "cpu", "--no-access-log", "--max-batch", str(max_batch), "--workers", "1"]
    code = f"{prelude}\nimport sys\nfrom ticketpack.cli.app import main\nsys.argv = ['ticketpack', *sys.argv[1:]]\nmain()"
    cmd = [sys.executable, "-c", code, *args]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read()}")
        if _get(f"{url}/readyz") == 200:
            return proc, url
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("server not ready in 300 s")


def start_bare(cpu: int | None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-c", BARE_ASGI, str(port)]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if _get(url) == 200:
            return proc, url
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"bare ASGI server did not start: {proc.stderr.read()[-500:]}")


def stop_server(proc: subprocess.Popen, ok: tuple[int, ...] = (0,)) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    if rc not in ok:
        print(f"warning: server exited {rc}: {proc.stderr.read()[-2000:]}", file=sys.stderr)


def in_app_seconds(url: str, model: str) -> tuple[float, int]:
    """(sum of seconds, count) of the server's predict latency histogram for ``model``, from /metrics."""
    import urllib.request

    text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    total = count = 0.0
    for line in text.splitlines():
        if f'model="{model}"' not in line:
            continue
        if line.startswith("ticketpack_predict_latency_seconds_sum"):
            total = float(line.rsplit(" ", 1)[1])
        elif line.startswith("ticketpack_predict_latency_seconds_count"):
            count = float(line.rsplit(" ", 1)[1])
    return total, int(count)


def check_answer(url: str, body: Path, rows: int) -> None:
    req = urllib.request.Request(url, data=body.read_bytes(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        answer = json.loads(r.read())
    if len(answer["predictions"]) != rows:
        raise SystemExit(f"bad answer from {url}: {str(answer)[:200]}")


def http_stack() -> str:
    import uvicorn

    parts = [f"uvicorn {uvicorn.__version__}"]
    for mod in ("uvloop", "httptools", "orjson"):
        try:
            parts.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            parts.append(f"no {mod}")
    return ", ".join(parts)


# ---- report -------------------------------------------------------------------------------------------------------


def markdown(res: ServeBench) -> str:
    m = {e.name: e for e in res.models}
    pin = (f"server pinned to CPU {res.server_cpu}, wrk to CPU {res.client_cpu}" if res.server_cpu is not None
           else "server and wrk unpinned")
    lines = [
        "# ticketpack serve: ticket vs dense on loopback, measured with wrk",
        "",
        f"`python bench/serve_bench.py` on {res.machine} ({res.cpu_count} CPUs; {pin}); load average "
        f"{res.load_average_start:.2f} at the start, {res.load_average_end:.2f} at the end. Load generator: "
        f"{res.load_generator} (1 thread, keep-alive connections, Lua script POSTing the JSON body). Server: "
        f"`ticketpack serve`, 1 worker, {res.ort_threads_per_run} ORT thread per run; {res.http_stack}; ONNX Runtime "
        f"{res.onnxruntime}, Python {res.python}. Each cell: {res.blocks} blocks of {res.seconds_per_block:g} s per "
        "model, alternating dense/ticket (order reversed every other block); p50/p99 are the medians over the blocks "
        "of wrk's percentiles.",
        "",
        "| model | architecture | format | weights remaining | file size | test acc |",
        "|---|---|---|---:|---:|---:|",
        *[f"| {e.name} | {e.architecture} | {e.format} | {e.weights_remaining:.1%} | {e.file_bytes / 1e6:.1f} MB | "
          f"{'' if e.test_accuracy is None else f'{e.test_accuracy:.3f}'} |" for e in m.values()],
        "",
        "Offline, in-process on the server's core (p50 per batch; ratio = dense p50 / ticket p50):",
        "",
        "| rows | dense session.run ms | ticket session.run ms | offline ratio | dense predictor ms | ticket predictor ms | predictor ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        *[f"| {o.rows} | {o.dense_run_p50_ms:.3f} | {o.ticket_run_p50_ms:.3f} | {o.ratio:.2f}× | "
          f"{o.dense_predictor_p50_ms:.3f} | {o.ticket_predictor_p50_ms:.3f} | {o.predictor_ratio:.2f}× |"
          for o in res.offline],
        "",
        "Served over HTTP (overhead = served p50 − offline session.run p50, at concurrency 1):",
        "",
        "| rows/req | conc. | dense req/s | dense p50 / p99 ms | dense overhead ms | ticket req/s | ticket p50 / p99 ms | "
        "ticket overhead ms | errors | served ratio (blocks min–max) | offline ratio | served / offline |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = {(r.model, r.rows_per_request, r.concurrency): r for r in res.load}

    def ov(r: LoadRow) -> str:
        return "–" if r.overhead_ms is None else f"{r.overhead_ms:.3f}"

    for c in res.cells:
        d = rows[("dense", c.rows_per_request, c.concurrency)]
        t = rows[("ticket", c.rows_per_request, c.concurrency)]
        lines.append(
            f"| {c.rows_per_request} | {c.concurrency} | {d.requests_per_s:,.1f} | {d.p50_ms:.3f} / {d.p99_ms:.3f} | "
            f"{ov(d)} | {t.requests_per_s:,.1f} | {t.p50_ms:.3f} / {t.p99_ms:.3f} | {ov(t)} | {d.errors + t.errors} | "
            f"{c.served_ratio:.2f}× ({min(c.block_ratios):.2f}–{max(c.block_ratios):.2f}) | {c.offline_ratio:.2f}× | "
            f"**{c.served_over_offline:.2f}** {'✓' if c.meets_target else '✗'} |"
        )
    met = sum(c.meets_target for c in res.cells)
    lines += [
        "",
        f"Served/offline ≥ 0.8: {met} of {len(res.cells)} cells. Largest overhead of a 1-row request at "
        f"concurrency 1 with these models: {res.max_overhead_1row_ms:.3f} ms p50. Total errors: {res.total_errors}.",
        "",
    ]
    if res.small_model_overhead_ms is not None:
        lines += [
            f"The server's own overhead (target ≤ 1 ms p50 for a 1-row request): **{res.small_model_overhead_ms:.3f} "
            f"ms**, measured with a small model whose session.run takes {res.small_model_run_p50_ms:.3f} ms "
            f"({res.small_model.architecture}, {res.small_model.file_bytes / 1e6:.2f} MB): served p50 − offline "
            "session.run p50, 1 row, concurrency 1.",
            "",
        ]
    lines += [
        "Time inside the server per request (mean, from its own latency histogram: request received to response "
        "sent) against the offline session.run p50; the rest of the served p50 is HTTP, loopback and wrk:",
        "",
        "| rows/req | conc. | dense in-server ms | dense offline run ms | ticket in-server ms | ticket offline run ms |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    offline_by_rows = {o.rows: o for o in res.offline}
    for c in res.cells:
        d = rows[("dense", c.rows_per_request, c.concurrency)]
        t = rows[("ticket", c.rows_per_request, c.concurrency)]
        o = offline_by_rows[c.rows_per_request]
        fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
        lines.append(f"| {c.rows_per_request} | {c.concurrency} | {fmt(d.in_app_mean_ms)} | {o.dense_run_p50_ms:.3f} | "
                     f"{fmt(t.in_app_mean_ms)} | {o.ticket_run_p50_ms:.3f} |")
    lines.append("")
    if res.ablation:
        lines += [
            "Where the overhead went (1 row, concurrency 1, same wrk run length; overhead = p50 − offline session.run p50):",
            "",
            "| server | model | p50 ms | overhead ms | req/s |",
            "|---|---|---:|---:|---:|",
            *[f"| {a.server} | {a.model} | {a.p50_ms:.3f} | {a.overhead_ms:.3f} | {a.requests_per_s:,.0f} |"
              for a in res.ablation],
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dense", type=Path, help="Dense export (default: built from a fresh ticket).")
    ap.add_argument("--ticket", type=Path, help="Ticket export (default: built from a fresh ticket).")
    ap.add_argument("--work", type=Path, help="Where to build the ticket and exports (default: a temp dir).")
    ap.add_argument("--hidden", default="4096,4096", help="Hidden layer widths of the MLP (when building).")
    ap.add_argument("--rounds", type=int, default=2, help="Neuron-pruning rounds of the exported ticket (when building).")
    ap.add_argument("--epochs", type=int, default=3, help="Training epochs per round (when building).")
    ap.add_argument("--rows", default="1,32,256", help="Rows (images) per request.")
    ap.add_argument("--concurrency", default="1,4", help="wrk connections.")
    ap.add_argument("--seconds", type=int, default=3, help="Seconds per block (one model, one wrk run; whole seconds, as wrk takes).")
    ap.add_argument("--blocks", type=int, default=4, help="Blocks per model and cell, models alternating.")
    ap.add_argument("--offline-seconds", type=float, default=4.0, help="Offline timing per batch size (both models).")
    ap.add_argument("--no-pin", action="store_true", help="Do not pin the server and wrk to separate CPUs.")
    ap.add_argument("--no-ablation", action="store_true", help="Skip the fast-path-off comparison.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS / "serve_bench.json")
    args = ap.parse_args()
    concs = [int(x) for x in args.concurrency.split(",")]
    rows_list = [int(x) for x in args.rows.split(",")]
    wrk, wrk_version = find_wrk()
    print(f"load generator: {wrk_version} ({wrk})", file=sys.stderr)

    if args.dense and args.ticket:
        dense, ticket = args.dense, args.ticket
    else:
        work = args.work or Path(tempfile.mkdtemp(prefix="serve-bench-"))
        work.mkdir(parents=True, exist_ok=True)
        dense, ticket = build_models(work, args.seed, [int(h) for h in args.hidden.split(",")], args.rounds, args.epochs)
    models = [describe("dense", dense), describe("ticket", ticket)]
    for e in models:
        print(f"{e.name}: {e.architecture} {e.format}, {e.weights_remaining:.1%} weights, {e.file_bytes:,} bytes",
              file=sys.stderr)

    ncpu = len(os.sched_getaffinity(0))
    pin = not args.no_pin and ncpu >= 2
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu, client_cpu = (cpus[-1], cpus[0]) if pin else (None, None)
    load_start = os.getloadavg()[0]

    small = small_entry = small_run_p50 = small_overhead = None
    if not args.no_ablation and 1 in rows_list:
        small = build_small(Path(tempfile.mkdtemp(prefix="serve-bench-small-")) if args.work is None else args.work,
                            args.seed)
        small_entry = describe("small", small)
    if pin:  # offline timings on the core the server will run on
        os.sched_setaffinity(0, {server_cpu})
    off = {r: offline(dense, ticket, r, args.offline_seconds) for r in rows_list}
    if small is not None:
        p = ticketpack.load(small, "cpu", 1)
        x = p.prepare(images(1))
        p.session.run([p.output_name], {p.input_name: x})
        small_run_p50 = 1000 * statistics.median(_p50(lambda: p.session.run([p.output_name], {p.input_name: x}),
                                                      args.offline_seconds / 4))
    if pin:
        os.sched_setaffinity(0, set(cpus))
    for o in off.values():
        print(f"offline rows={o.rows}: dense {o.dense_run_p50_ms:.3f} ms, ticket {o.ticket_run_p50_ms:.3f} ms, "
              f"ratio {o.ratio:.2f} (predictor {o.predictor_ratio:.2f})", file=sys.stderr)

    tmp = Path(tempfile.mkdtemp(prefix="serve-bench-wrk-"))
    script = tmp / "post.lua"
    script.write_text(WRK_SCRIPT)
    bodies = {}
    for rows in rows_list:
        bodies[rows] = tmp / f"body{rows}.json"
        bodies[rows].write_text(json.dumps({"inputs": images(rows).tolist()}))

    load: list[LoadRow] = []
    cells: list[Cell] = []
    proc, url = start_server({"dense": dense, "ticket": ticket}, max(rows_list), server_cpu)
    try:
        for rows in rows_list:
            for name in ("dense", "ticket"):
                check_answer(f"{url}/v1/models/{name}/predict", bodies[rows], rows)
            for conc in concs:
                runs: dict[str, list[dict]] = {"dense": [], "ticket": []}
                in_app = {name: [0.0, 0] for name in runs}
                for block in range(args.blocks):  # dense, ticket | ticket, dense | ...
                    for name in ("dense", "ticket") if block % 2 == 0 else ("ticket", "dense"):
                        before = in_app_seconds(url, name)
                        runs[name].append(run_wrk(wrk, script, bodies[rows], f"{url}/v1/models/{name}/predict", conc,
                                                  args.seconds, client_cpu))
                        after = in_app_seconds(url, name)
                        in_app[name][0] += after[0] - before[0]
                        in_app[name][1] += after[1] - before[1]
                pooled = {}
                for name, rs in runs.items():
                    n, secs = sum(r["requests"] for r in rs), sum(r["seconds"] for r in rs)
                    p50 = statistics.median(r["p50_ms"] for r in rs)
                    run_p50 = off[rows].dense_run_p50_ms if name == "dense" else off[rows].ticket_run_p50_ms
                    pooled[name] = LoadRow(
                        model=name, rows_per_request=rows, concurrency=conc, requests=n,
                        errors=sum(r["errors"] for r in rs), seconds=secs, requests_per_s=n / secs,
                        rows_per_s=n * rows / secs, p50_ms=p50, p99_ms=statistics.median(r["p99_ms"] for r in rs),
                        overhead_ms=p50 - run_p50 if conc == 1 else None,
                        in_app_mean_ms=1000 * in_app[name][0] / in_app[name][1] if in_app[name][1] else None,
                    )
                d, t = pooled["dense"], pooled["ticket"]
                load += [d, t]
                served = t.requests_per_s / d.requests_per_s
                blocks = [(tr["requests"] / tr["seconds"]) / (dr["requests"] / dr["seconds"])
                          for dr, tr in zip(runs["dense"], runs["ticket"])]
                cell = Cell(rows_per_request=rows, concurrency=conc, served_ratio=served, block_ratios=blocks,
                            offline_ratio=off[rows].ratio, served_over_offline=served / off[rows].ratio,
                            meets_target=served / off[rows].ratio >= 0.8)
                cells.append(cell)
                print(f"rows {rows}, conc {conc}: dense {d.requests_per_s:,.1f} req/s p50 {d.p50_ms:.3f} ms · ticket "
                      f"{t.requests_per_s:,.1f} req/s p50 {t.p50_ms:.3f} ms · served {served:.2f} / offline "
                      f"{off[rows].ratio:.2f} = {cell.served_over_offline:.2f}", file=sys.stderr)
    finally:
        stop_server(proc)

    ablation: list[AblationRow] = []
    if not args.no_ablation and 1 in rows_list:
        variants = [("fast path (as shipped)", ""), ("FastAPI route (fast path off)", NO_FAST_PATH),
                    ("FastAPI route, asyncio + h11 (before)", NO_FAST_PATH + "\n" + NO_UVLOOP)]
        for label, prelude in variants:
            proc, url = start_server({"dense": dense, "ticket": ticket}, max(rows_list), server_cpu, prelude)
            try:
                for name in ("dense", "ticket"):
                    rs = [run_wrk(wrk, script, bodies[1], f"{url}/v1/models/{name}/predict", 1, args.seconds, client_cpu)
                          for _ in range(2)]
                    p50 = statistics.median(r["p50_ms"] for r in rs)
                    run_p50 = off[1].dense_run_p50_ms if name == "dense" else off[1].ticket_run_p50_ms
                    ablation.append(AblationRow(server=label, model=name, p50_ms=p50, overhead_ms=p50 - run_p50,
                                                requests_per_s=sum(r["requests"] for r in rs) / sum(r["seconds"] for r in rs)))
                    print(f"{label} {name}: p50 {p50:.3f} ms, overhead {p50 - run_p50:.3f} ms", file=sys.stderr)
            finally:
                stop_server(proc)
        if small is not None:
            proc, url = start_server({"small": small}, max(rows_list), server_cpu)
            try:
                rs = [run_wrk(wrk, script, bodies[1], f"{url}/v1/models/small/predict", 1, args.seconds, client_cpu)
                      for _ in range(2)]
                p50 = statistics.median(r["p50_ms"] for r in rs)
                small_overhead = p50 - small_run_p50
                ablation.append(AblationRow(server="fast path (as shipped), small model", model="small", p50_ms=p50,
                                            overhead_ms=small_overhead, requests_per_s=sum(r["requests"] for r in rs)
                                            / sum(r["seconds"] for r in rs)))
                print(f"small model: p50 {p50:.3f} ms, overhead {small_overhead:.3f} ms", file=sys.stderr)
            finally:
                stop_server(proc)
        proc, url = start_bare(server_cpu)
        try:
            rs = [run_wrk(wrk, script, bodies[1], url, 1, args.seconds, client_cpu) for _ in range(2)]
            p50 = statistics.median(r["p50_ms"] for r in rs)
            ablation.append(AblationRow(server="floor: bare ASGI app on the same uvicorn, fixed answer, no model",
                                        model="–", p50_ms=p50, overhead_ms=p50,
                                        requests_per_s=sum(r["requests"] for r in rs) / sum(r["seconds"] for r in rs)))
            print(f"bare ASGI floor: p50 {p50:.3f} ms", file=sys.stderr)
        finally:
            stop_server(proc, ok=(0, -signal.SIGTERM))  # uvicorn.run re-raises the SIGTERM it shut down on
    shutil.rmtree(tmp, ignore_errors=True)

    import onnxruntime

    one_row = [r.overhead_ms for r in load if r.rows_per_request == 1 and r.overhead_ms is not None]
    res = ServeBench(
        ticketpack_version=ticketpack.__version__, onnxruntime=onnxruntime.__version__, python=platform.python_version(),
        machine=platform.machine(), cpu_count=os.cpu_count() or 0, load_generator=wrk_version,
        server_cpu=server_cpu, client_cpu=client_cpu, http_stack=http_stack(), ort_threads_per_run=1,
        seconds_per_block=args.seconds, blocks=args.blocks, models=models, offline=list(off.values()), load=load,
        cells=cells, ablation=ablation, total_errors=sum(r.errors for r in load),
        max_overhead_1row_ms=max(one_row) if one_row else None,
        small_model=small_entry, small_model_run_p50_ms=small_run_p50, small_model_overhead_ms=small_overhead,
        load_average_start=load_start, load_average_end=os.getloadavg()[0],
    )
    write_model(args.out, res)
    md = markdown(res)
    atomic_write_text(args.out.with_suffix(".md"), md)
    print(md)


if __name__ == "__main__":
    main()
