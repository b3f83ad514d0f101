"""Loopback load test of `ticketpack serve`: a ticket and its dense model served side by side.

    python bench/serve_bench.py                       # builds a digits ticket + exports, then measures
    python bench/serve_bench.py --dense d.onnx --ticket t.onnx [--requests 1000] [--time-limit 15]

1. Offline: the same batch through ``ticketpack.load(...)`` for each model, interleaved, 1 ORT thread → rows/s and
   the ticket/dense throughput ratio (what `evaluate` measures, in this process on this machine).
2. Served: one `ticketpack serve` subprocess on 127.0.0.1 holds both models (1 ORT thread per run). For each
   rows-per-request and concurrency level, a fixed number of requests per model (or the time limit, whichever
   comes first) is sent in blocks alternating between the two models (order reversed every other block), and
   each model's blocks are pooled: throughput, p50/p99 latency and errors side by side.

Client and server share this machine's cores, so absolute figures include the load generator's cost; the ratios
are measured under identical conditions. Writes bench/results/serve_bench.json and serve_bench.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from pydantic import BaseModel, Field

import ticketpack
from ticketpack.fileio import atomic_write_text, write_model

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


class ModelEntry(BaseModel):
    name: str
    path: str
    format: str
    weights_remaining: float
    file_bytes: int
    test_accuracy: float | None


class OfflineRow(BaseModel):
    rows: int
    dense_rows_per_s: float
    ticket_rows_per_s: float
    ticket_over_dense: float


class LoadRow(BaseModel):
    model: str
    rows_per_request: int
    concurrency: int
    requests: int
    errors: int
    seconds: float
    hit_time_limit: bool
    requests_per_s: float
    rows_per_s: float
    p50_ms: float
    p99_ms: float


class Comparison(BaseModel):
    rows_per_request: int
    concurrency: int
    served_ticket_over_dense: float
    block_ratios: list[float] = Field(description="ticket/dense throughput in each block: the spread is the noise.")
    offline_ticket_over_dense: float
    meets_offline_ratio: bool


class ServeBench(BaseModel):
    ticketpack_version: str
    onnxruntime: str
    python: str
    machine: str
    cpu_count: int
    ort_threads_per_run: int
    requests_per_model: int
    blocks: int
    time_limit_s: float
    models: list[ModelEntry]
    offline: list[OfflineRow]
    load: list[LoadRow]
    comparisons: list[Comparison]
    total_errors: int
    load_average_before: float
    load_average_after: float


# ---- models -------------------------------------------------------------------------------------------------------


def build_models(work: Path, seed: int, level: str, fmt: str) -> tuple[Path, Path]:
    """A lenet-300-100 ticket on digits and its dense round 0, both exported."""
    from ticketpack.export.exporter import export_model
    from ticketpack.search import SearchConfig, search_ticket

    ticket = work / "ticket"
    if not (ticket / "manifest.json").exists():
        cfg = SearchConfig.model_validate(
            {"train": {"epochs": 8}, "prune": {"target_sparsity": 0.9, "rate": 0.5}, "threads": 1, "seed": seed}
        )
        print(f"searching a digits ticket into {ticket} …", file=sys.stderr)
        search_ticket(cfg, ticket)
    dense, sparse = work / "dense.onnx", work / "ticket.onnx"
    export_model(ticket, dense, level=0, format="dense", threads=1)
    export_model(ticket, sparse, level=level, format=fmt, threads=1)
    return dense, sparse


def describe(name: str, path: Path) -> ModelEntry:
    card = ticketpack.load(path, "cpu", 1).card
    return ModelEntry(
        name=name, path=str(path), format=card.export.format + ("+int8" if card.export.quantize == "int8" else ""),
        weights_remaining=card.sparsity.weights_remaining, file_bytes=path.stat().st_size,
        test_accuracy=card.metrics.test_accuracy,
    )


def images(n: int) -> np.ndarray:
    from sklearn.datasets import load_digits

    x = load_digits().images.astype(np.float32)
    return np.concatenate([x] * (n // len(x) + 1))[:n]


# ---- offline ------------------------------------------------------------------------------------------------------


def offline(dense: Path, ticket: Path, rows: int, seconds: float = 2.0) -> OfflineRow:
    preds = {"dense": ticketpack.load(dense, "cpu", 1), "ticket": ticketpack.load(ticket, "cpu", 1)}
    batch = images(rows)
    rates: dict[str, list[float]] = {k: [] for k in preds}
    for name in preds:  # warm-up
        preds[name].predict_proba(batch)
    for rep in range(6):
        order = list(preds) if rep % 2 == 0 else list(reversed(preds))
        for name in order:
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds / 6:
                preds[name].predict_proba(batch)
                n += 1
            rates[name].append(n * rows / (time.perf_counter() - t0))
    d, t = statistics.median(rates["dense"]), statistics.median(rates["ticket"])
    return OfflineRow(rows=rows, dense_rows_per_s=d, ticket_rows_per_s=t, ticket_over_dense=t / d)


# ---- served -------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(dense: Path, ticket: Path, max_batch: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "ticketpack", "serve", f"dense={dense}", f"ticket={ticket}", "--host", "127.0.0.1",
           "--port", str(port), "--threads", "1", "--provider", "cpu", "--no-access-log",
           "--max-batch", str(max_batch)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server not ready in 120 s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    if rc != 0:
        print(f"warning: server exited {rc}: {proc.stderr.read()[-2000:]}", file=sys.stderr)


async def load_run(url: str, body: bytes, rows: int, requests: int, concurrency: int, time_limit: float) -> dict:
    latencies: list[float] = []
    errors = issued = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        first = await client.post(url, content=body, headers=headers)  # warm the connection and check the answer
        if first.status_code != 200 or len(first.json()["predictions"]) != rows:
            raise SystemExit(f"bad answer from {url}: {first.status_code} {first.text[:200]}")
        t0 = time.perf_counter()
        deadline = t0 + time_limit

        async def worker() -> None:
            nonlocal errors, issued
            while issued < requests and time.perf_counter() < deadline:
                issued += 1
                t = time.perf_counter()
                try:
                    r = await client.post(url, content=body, headers=headers)
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - t)
                else:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - t0
    return {"latencies": latencies, "errors": errors, "seconds": seconds, "hit_time_limit": issued < requests}


def pooled(model: str, rows: int, conc: int, runs: list[dict]) -> LoadRow:
    lat = np.array([x for r in runs for x in r["latencies"]]) * 1000
    done, secs = len(lat), sum(r["seconds"] for r in runs)
    return LoadRow(
        model=model, rows_per_request=rows, concurrency=conc, requests=done,
        errors=sum(r["errors"] for r in runs), seconds=secs, hit_time_limit=any(r["hit_time_limit"] for r in runs),
        requests_per_s=done / secs, rows_per_s=done * rows / secs,
        p50_ms=float(np.percentile(lat, 50)) if done else float("nan"),
        p99_ms=float(np.percentile(lat, 99)) if done else float("nan"),
    )


# ---- report -------------------------------------------------------------------------------------------------------


def markdown(res: ServeBench) -> str:
    m = {e.name: e for e in res.models}
    lines = [
        "# ticketpack serve: ticket vs dense on loopback",
        "",
        f"{res.cpu_count} CPU cores shared by the server, the load generator and other work (load average "
        f"{res.load_average_before:.1f} before, {res.load_average_after:.1f} after); ONNX Runtime {res.onnxruntime}, "
        f"{res.ort_threads_per_run} thread per inference run. Per cell: {res.requests_per_model} requests per model, "
        f"in {res.blocks} blocks alternating between the models (time limit {res.time_limit_s:g} s per cell).",
        "",
        "| model | format | weights remaining | file size | test acc |",
        "|---|---|---:|---:|---:|",
        *[f"| {e.name} | {e.format} | {e.weights_remaining:.1%} | {e.file_bytes / 1024:.0f} KiB | "
          f"{'' if e.test_accuracy is None else f'{e.test_accuracy:.3f}'} |" for e in m.values()],
        "",
        "Offline (predictor in-process, interleaved):",
        "",
        "| rows/batch | dense rows/s | ticket rows/s | ticket/dense |",
        "|---:|---:|---:|---:|",
        *[f"| {o.rows} | {o.dense_rows_per_s:,.0f} | {o.ticket_rows_per_s:,.0f} | {o.ticket_over_dense:.2f}× |"
          for o in res.offline],
        "",
        "Served over HTTP:",
        "",
        "| rows/req | conc. | dense req/s | dense p50/p99 ms | ticket req/s | ticket p50/p99 ms | errors | served ratio (blocks min–max) | offline ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = {(r.model, r.rows_per_request, r.concurrency): r for r in res.load}
    for c in res.comparisons:
        d = rows[("dense", c.rows_per_request, c.concurrency)]
        t = rows[("ticket", c.rows_per_request, c.concurrency)]
        lines.append(
            f"| {c.rows_per_request} | {c.concurrency} | {d.requests_per_s:,.0f} | "
            f"{d.p50_ms:.1f} / {d.p99_ms:.1f} | {t.requests_per_s:,.0f} | {t.p50_ms:.1f} / {t.p99_ms:.1f} | "
            f"{d.errors + t.errors} | {c.served_ticket_over_dense:.2f}× ({min(c.block_ratios):.2f}–{max(c.block_ratios):.2f}) | "
            f"{c.offline_ticket_over_dense:.2f}× |"
        )
    lines += ["", f"Total errors: {res.total_errors}.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dense", type=Path, help="Dense export (default: built from a fresh digits ticket).")
    ap.add_argument("--ticket", type=Path, help="Ticket export (default: built from a fresh digits ticket).")
    ap.add_argument("--work", type=Path, help="Where to build the ticket and exports (default: a temp dir).")
    ap.add_argument("--level", default="10%", help="Ticket round or weights remaining to export (when building).")
    ap.add_argument("--format", default="compact", help="Export format of the ticket (when building).")
    ap.add_argument("--requests", type=int, default=400, help="Requests per model per cell.")
    ap.add_argument("--blocks", type=int, default=4, help="Blocks each cell's requests are split into, models alternating.")
    ap.add_argument("--time-limit", type=float, default=60.0, help="Seconds per cell at most (both models together).")
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--rows", default="1,64", help="Rows (images) per request.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS / "serve_bench.json")
    args = ap.parse_args()
    concs = [int(x) for x in args.concurrency.split(",")]
    rows_list = [int(x) for x in args.rows.split(",")]

    if args.dense and args.ticket:
        dense, ticket = args.dense, args.ticket
    else:
        work = args.work or Path(tempfile.mkdtemp(prefix="serve-bench-"))
        dense, ticket = build_models(work, args.seed, args.level, args.format)
    models = [describe("dense", dense), describe("ticket", ticket)]
    for e in models:
        print(f"{e.name}: {e.format}, {e.weights_remaining:.1%} weights, {e.file_bytes:,} bytes", file=sys.stderr)

    off = {r: offline(dense, ticket, r) for r in rows_list}
    for o in off.values():
        print(f"offline rows={o.rows}: dense {o.dense_rows_per_s:,.0f} rows/s, ticket {o.ticket_rows_per_s:,.0f} "
              f"rows/s, ratio {o.ticket_over_dense:.2f}", file=sys.stderr)

    load: list[LoadRow] = []
    comparisons: list[Comparison] = []
    load_before = os.getloadavg()[0]
    proc, url = start_server(dense, ticket, max(rows_list))
    try:
        for rows in rows_list:
            body = json.dumps({"inputs": images(rows).tolist()}).encode()
            for conc in concs:
                runs: dict[str, list[dict]] = {"dense": [], "ticket": []}
                for block in range(args.blocks):  # dense, ticket | ticket, dense | ...
                    for name in ("dense", "ticket") if block % 2 == 0 else ("ticket", "dense"):
                        runs[name].append(asyncio.run(load_run(
                            f"{url}/v1/models/{name}/predict", body, rows, args.requests // args.blocks, conc,
                            args.time_limit / (2 * args.blocks),
                        )))
                d, t = pooled("dense", rows, conc, runs["dense"]), pooled("ticket", rows, conc, runs["ticket"])
                load += [d, t]
                served = t.requests_per_s / d.requests_per_s
                blocks = [(len(tr["latencies"]) / tr["seconds"]) / (len(dr["latencies"]) / dr["seconds"])
                          for dr, tr in zip(runs["dense"], runs["ticket"])]
                comparisons.append(Comparison(
                    rows_per_request=rows, concurrency=conc, served_ticket_over_dense=served, block_ratios=blocks,
                    offline_ticket_over_dense=off[rows].ticket_over_dense,
                    meets_offline_ratio=served >= off[rows].ticket_over_dense,
                ))
                print(f"rows {rows}, concurrency {conc}: dense {d.requests_per_s:,.0f} req/s (p50 {d.p50_ms:.1f} "
                      f"p99 {d.p99_ms:.1f} ms, {d.errors} err) · ticket {t.requests_per_s:,.0f} req/s (p50 "
                      f"{t.p50_ms:.1f} p99 {t.p99_ms:.1f} ms, {t.errors} err) · served ratio {served:.2f} vs offline "
                      f"{off[rows].ticket_over_dense:.2f}", file=sys.stderr)
    finally:
        stop_server(proc)

    import onnxruntime

    res = ServeBench(
        ticketpack_version=ticketpack.__version__, onnxruntime=onnxruntime.__version__, python=platform.python_version(),
        machine=platform.machine(), cpu_count=os.cpu_count() or 0, ort_threads_per_run=1,
        requests_per_model=args.requests, blocks=args.blocks, time_limit_s=args.time_limit, models=models, offline=list(off.values()),
        load=load, comparisons=comparisons, total_errors=sum(r.errors for r in load),
        load_average_before=load_before, load_average_after=os.getloadavg()[0],
    )
    write_model(args.out, res)
    md = markdown(res)
    atomic_write_text(args.out.with_suffix(".md"), md)
    print(md)


if __name__ == "__main__":
    main()
