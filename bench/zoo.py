"""The zoo users bring (issue 24): eleven torchvision architectures through ticketpack, as a new user runs them.

    /work/zoo-venv/bin/python bench/zoo.py [--models resnet18,vit] [--threads 1] [--timeout 900] [--work DIR]

Each model is this file's factory (``bench/zoo.py:<name>``, the contract of docs/custom-models.md): a torchvision
network, untrained (random init), num_classes 10, behind a wrapper that takes the 8x8 digits, upsamples them to
32x32 (``F.interpolate``, bilinear) and repeats them to 3 channels. Per model, each a subprocess of
``python -m ticketpack`` under one hard timeout (--timeout seconds for the model, all steps together):

1. ``search --granularity neuron --rounds 2 --prune-rate 0.7 --epochs 2`` (the short recipe: 0.3^2 = 9% of the
   units at round 2; the rest of the recipe is the default: adam, lr 1.2e-3, batch 64, seed 0);
2. ``export --level 0 --format dense`` (the dense export the compact file is compared with);
3. ``export --level R --format compact``, R the ticket's sparsest round (units remaining are counted from its
   mask: dim-0 slices of the prunable weights with any weight kept, the output layer excluded, so a layer left
   dense counts as kept; the table says when that round is above 10% of the units);
4. ``validate --strict`` on the compact file.

It reports the compact file's size against the dense export, the test accuracy lost at round R (the search's
PyTorch accuracies, round 0 vs round R, and the compact ONNX file's), the wall time of each step, every layer the
search left dense with its reason (the manifest's ``dense_layers``, checked against the card's
``sparsity.dense_layers``), and for a failure its one-line message and the seconds until it failed (or that the
model hit the timeout). Writes bench/results/zoo.json and bench/results/zoo.md; with --models the other models'
earlier entries are kept (each entry carries its own date and commit). Tickets and files go to --work.

torchvision: PyPI's torchvision does not import beside the CPU torch 2.13.0 of the project's .venv. A working
pair, in a venv of its own (torch 2.14.1 is a CUDA build; it runs on the CPU):

    python3.11 -m venv /work/zoo-venv
    /work/zoo-venv/bin/pip install torch==2.14.1 torchvision==0.29.1
    /work/zoo-venv/bin/pip install -e "/work/main[test]"      # check that it keeps torch 2.14.1

Without torchvision the script prints why and exits 0; it never installs anything.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve()
RESULTS = ROOT / "bench" / "results"
RECIPE = {"rounds": 2, "rate": 0.7, "epochs": 2, "seed": 0}
UNIT_TARGET = 0.10

try:  # the factories below need both; main() reports the reason and exits 0 when either is missing
    import torch
    import torch.nn.functional as F
    import torchvision
    from torch import nn

    IMPORT_ERROR = None
except Exception as exc:  # noqa: BLE001 - any import failure (ABI mismatch, missing) is a reason to skip
    IMPORT_ERROR = f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------------------------------------------------------
# The user's model file: factories name(input_shape, num_classes, **options) -> nn.Module
# ---------------------------------------------------------------------------------------------------------------

if IMPORT_ERROR is None:

    class Upsampled(nn.Module):
        """The digits (N, 1, 8, 8) upsampled to (N, 3, 32, 32) before the torchvision network."""

        def __init__(self, net: nn.Module, size: int = 32) -> None:
            super().__init__()
            self.size = size
            self.net = net

        def forward(self, x):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
            if x.shape[1] == 1:
                x = x.repeat(1, 3, 1, 1)
            return self.net(x)


def _tv(expr: str, num_classes: int):
    """Build the torchvision expression (one of BUILT's), num_classes filled in."""
    from torchvision import models
    from torchvision.models.convnext import CNBlockConfig

    return eval(expr.format(nc=num_classes), {"models": models, "CNBlockConfig": CNBlockConfig})


# name -> torchvision constructor as built (num_classes = {nc}); the named constructors where a 2-core CPU trains
# them in seconds per epoch at 32x32, torchvision's classes at small widths where not (densenet121: 29 s/epoch,
# convnext_tiny: 28M parameters, 44 s/epoch at 1 thread)
BUILT = {
    "resnet18": "models.resnet18(num_classes={nc})",
    "mobilenet_v2": "models.mobilenet_v2(num_classes={nc})",
    "mobilenet_v3_small": "models.mobilenet_v3_small(num_classes={nc})",
    "efficientnet_b0": "models.efficientnet_b0(num_classes={nc})",
    "squeezenet1_1": "models.squeezenet1_1(num_classes={nc})",
    "densenet": "models.DenseNet(growth_rate=16, block_config=(2, 2, 2, 2), num_init_features=32, bn_size=2, "
                "num_classes={nc})",
    "shufflenet_v2_x0_5": "models.shufflenet_v2_x0_5(num_classes={nc})",
    "regnet_x_400mf": "models.regnet_x_400mf(num_classes={nc})",
    "convnext": "models.ConvNeXt([CNBlockConfig(16, 32, 1), CNBlockConfig(32, 64, 1), CNBlockConfig(64, 128, 2), "
                "CNBlockConfig(128, None, 1)], num_classes={nc})",
    "vit": "models.VisionTransformer(image_size=32, patch_size=4, num_layers=2, num_heads=2, hidden_dim=64, "
           "mlp_dim=128, num_classes={nc})",
    "swin": "models.SwinTransformer(patch_size=[4, 4], embed_dim=24, depths=[2, 2], num_heads=[2, 2], "
            "window_size=[4, 4], num_classes={nc})",
}


def _factory(name: str):
    def build(input_shape, num_classes: int, **options):
        if options:
            raise TypeError(f"{name} takes no options (got {sorted(options)})")
        return Upsampled(_tv(BUILT[name], num_classes))

    build.__name__ = name
    build.__doc__ = f"Upsampled({BUILT[name].format(nc='num_classes')})"
    return build


resnet18 = _factory("resnet18")
mobilenet_v2 = _factory("mobilenet_v2")
mobilenet_v3_small = _factory("mobilenet_v3_small")
efficientnet_b0 = _factory("efficientnet_b0")
squeezenet1_1 = _factory("squeezenet1_1")
densenet = _factory("densenet")
shufflenet_v2_x0_5 = _factory("shufflenet_v2_x0_5")
regnet_x_400mf = _factory("regnet_x_400mf")
convnext = _factory("convnext")
vit = _factory("vit")
swin = _factory("swin")


# ---------------------------------------------------------------------------------------------------------------
# The bench
# ---------------------------------------------------------------------------------------------------------------


def run_step(cmd: list[str], deadline: float, env: dict[str, str], log_path: Path) -> dict:
    """Run one CLI command in its own process group, killed at ``deadline`` (time.monotonic)."""
    start = time.monotonic()
    left = deadline - start
    if left <= 0:
        return {"cmd": cmd, "rc": None, "timed_out": True, "seconds": 0.0, "stdout": "", "stderr": ""}
    proc = subprocess.Popen(cmd, cwd=log_path.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=left)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the step's own process group: the CLI and its children
        stdout, stderr = proc.communicate()
        timed_out = True
    seconds = time.monotonic() - start
    log_path.write_text(f"$ {' '.join(cmd)}\n# rc {proc.returncode}, {seconds:.1f}s\n--- stdout\n{stdout}\n--- stderr\n{stderr}")
    return {"cmd": cmd, "rc": proc.returncode, "timed_out": timed_out, "seconds": round(seconds, 2),
            "stdout": stdout, "stderr": stderr}


def one_line_error(stderr: str) -> str:
    """The CLI's ``error: ...`` line, else the last non-empty line (a traceback's last line)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    return (errors[-1] if errors else lines[-1] if lines else "(no output)")[:500]


def units_remaining(ticket: Path, manifest: dict, rnd: int) -> dict:
    """Dim-0 slices (output units, channels, head rows) of the prunable weights that keep any weight in round
    ``rnd``'s mask, the output layer excluded."""
    from safetensors.numpy import load_file

    rec = next(r for r in manifest["rounds"] if r["round"] == rnd)
    mask = load_file(str(ticket / rec["mask_file"]["path"]))
    kept = total = 0
    for name, m in mask.items():
        if name in manifest.get("output_names", []):
            continue
        rows = m.reshape(m.shape[0], -1).any(axis=1)
        kept += int(rows.sum())
        total += int(rows.size)
    return {"kept": kept, "total": total, "fraction": kept / total if total else None}


def bench_model(name: str, args, env: dict[str, str]) -> dict:
    work = args.work / name
    work.mkdir(parents=True, exist_ok=True)
    ticket, dense, compact = work / "ticket", work / "dense.onnx", work / "compact.onnx"
    deadline = time.monotonic() + args.timeout
    py = [sys.executable, "-m", "ticketpack"]
    t = str(args.threads)
    entry: dict = {"model": name, "built": f"Upsampled(torchvision.{BUILT[name].format(nc=10)})",
                   "measured_at": datetime.now(UTC).isoformat(timespec="seconds"), "steps": {}}
    try:
        m = _factory(name)((1, 8, 8), 10)
        entry["parameters"] = sum(p.numel() for p in m.parameters())
        layer_names = [n for n, _ in m.named_modules() if n]
        del m
    except Exception as exc:  # noqa: BLE001 - reported as the model's failure
        entry["failure"] = {"step": "build", "seconds": 0.0, "error": f"{type(exc).__name__}: {exc}"}
        return entry

    steps = [
        ("search", py + ["search", "--model", f"{HERE}:{name}", "--granularity", "neuron",
                         "--rounds", str(RECIPE["rounds"]), "--prune-rate", str(RECIPE["rate"]),
                         "--epochs", str(RECIPE["epochs"]), "--seed", str(RECIPE["seed"]), "--threads", t,
                         "--out", str(ticket), "--force", "--json"]),
        ("dense_export", py + ["export", str(ticket), "--level", "0", "--format", "dense", "--threads", t,
                               "-o", str(dense), "--force", "--json"]),
        ("compact_export", None),  # the level comes from the search
        ("validate", py + ["validate", str(compact), "--strict", "--json"]),
    ]
    outputs: dict[str, dict] = {}
    for step, cmd in steps:
        if step == "compact_export":
            level = max(r["round"] for r in outputs["search"]["rounds"])
            entry["level"] = level
            entry["units"] = units_remaining(ticket, outputs["search"], level)
            entry["units_at_most_10pct"] = entry["units"]["fraction"] is not None and entry["units"]["fraction"] <= UNIT_TARGET
            cmd = py + ["export", str(ticket), "--level", str(level), "--format", "compact", "--threads", t,
                        "-o", str(compact), "--force", "--json"]
        print(f"  {name}: {step} ...", flush=True)
        res = run_step(cmd, deadline, env, work / f"{step}.log")
        entry["steps"][step] = {"seconds": res["seconds"], "rc": res["rc"], "timed_out": res["timed_out"],
                                "command": " ".join(str(c) for c in cmd[1:]).replace(str(ROOT) + "/", "")}
        print(f"  {name}: {step} rc={res['rc']} {res['seconds']:.1f}s" + (" TIMEOUT" if res["timed_out"] else ""),
              flush=True)
        if res["timed_out"] or res["rc"] != 0:
            entry["failure"] = {"step": step, "seconds": res["seconds"], "timed_out": res["timed_out"],
                                "error": f"timed out after {res['seconds']:.0f}s (limit {args.timeout}s per model)"
                                if res["timed_out"] else one_line_error(res["stderr"])}
            entry["failure"]["within_60s"] = res["seconds"] <= 60 and not res["timed_out"]
            entry["failure"]["names_a_layer"] = any(n in entry["failure"]["error"] for n in layer_names)
            break
        outputs[step] = json.loads(res["stdout"])
        if step == "search":
            man = outputs["search"]
            entry["dense_layers"] = man.get("dense_layers")
            entry["rounds"] = [{k: r[k] for k in ("round", "weights_remaining", "val_accuracy", "test_accuracy",
                                                  "seconds", "wall_seconds")} for r in man["rounds"]]
            entry["search_setup_seconds"] = man.get("setup_seconds")
    summarize(entry, outputs)
    return entry


def summarize(entry: dict, outputs: dict[str, dict]) -> None:
    """The figures of the report, from the JSON each step printed."""
    if "search" in outputs and "level" in entry:
        rounds = {r["round"]: r for r in outputs["search"]["rounds"]}
        d, s = rounds[0], rounds[entry["level"]]
        entry["weights_remaining"] = s["weights_remaining"]
        entry["test_acc_dense"], entry["test_acc_level"] = d["test_accuracy"], s["test_accuracy"]
        entry["acc_drop_pts"] = round(100 * (d["test_accuracy"] - s["test_accuracy"]), 2)
    if "compact_export" in outputs:
        c = outputs["compact_export"]
        card = c["card"]
        entry["compact_bytes"] = c["file_bytes"]
        entry["dense_bytes_reported_by_export"] = c.get("dense_bytes")
        entry["compacted"] = card["export"].get("compacted")
        entry["card_dense_layers"] = card["sparsity"].get("dense_layers")
        entry["dense_layers_match_card"] = entry["card_dense_layers"] == entry.get("dense_layers")
        entry["onnx_test_acc_compact"] = card["metrics"].get("test_accuracy")
        entry["parity_max_abs_diff"] = (card.get("parity") or {}).get("max_abs_diff")
        entry["route"] = card["export"].get("route")
    if "dense_export" in outputs:
        d = outputs["dense_export"]
        entry["dense_bytes"] = d["file_bytes"]
        entry["onnx_test_acc_dense"] = d["card"]["metrics"].get("test_accuracy")
    if "compact_bytes" in entry and "dense_bytes" in entry:
        entry["size_ratio"] = round(entry["compact_bytes"] / entry["dense_bytes"], 4)
        e, de = entry["steps"]["compact_export"]["seconds"], entry["steps"]["dense_export"]["seconds"]
        entry["export_ratio"] = round(e / de, 3) if de else None
    if "validate" in outputs:
        v = outputs["validate"]
        entry["validate"] = {k: v[k] for k in ("ok", "passed", "valid", "checks") if k in v} or v


def environment(args) -> dict:
    import onnxruntime
    import torch_pruning

    import ticketpack

    src = Path(ticketpack.__file__).resolve().parent  # what the steps import too (they run outside the repository)
    commit = dirty = None
    if src == ROOT / "ticketpack":
        try:
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                    check=True).stdout.strip()
            status = subprocess.run(["git", "status", "--porcelain", "ticketpack"], cwd=ROOT, capture_output=True,
                                    text=True, check=False).stdout
            dirty = sorted(ln[3:] for ln in status.splitlines())
        except (OSError, subprocess.CalledProcessError):
            pass
    return {"machine": f"{platform.machine()} ({os.cpu_count()} CPUs)", "python": platform.python_version(),
            "torch": torch.__version__, "torchvision": torchvision.__version__, "onnxruntime": onnxruntime.__version__,
            "torch_pruning": getattr(torch_pruning, "__version__", "?"),
            "ticketpack": getattr(ticketpack, "__version__", "?"), "ticketpack_source": str(src), "commit": commit,
            "ticketpack_tree_modified": dirty, "threads": args.threads, "timeout_s_per_model": args.timeout,
            "recipe": RECIPE, "load_average_at_start": list(os.getloadavg()), "note": args.note}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(BUILT), help=f"Comma-separated subset of: {', '.join(BUILT)}.")
    p.add_argument("--threads", type=int, default=1, help="Torch and ONNX Runtime threads of every step (1 or 2).")
    p.add_argument("--timeout", type=int, default=900, help="Hard limit in seconds per model, all steps together.")
    p.add_argument("--work", type=Path, default=Path("/tmp/ticketpack-zoo"), help="Tickets and ONNX files.")
    p.add_argument("--note", default="", help="A sentence for zoo.md about this run (e.g. which code it measured).")
    p.add_argument("--results", type=Path, default=RESULTS, help="Where zoo.json and zoo.md go.")
    args = p.parse_args()
    if IMPORT_ERROR is not None:
        print(f"skip: torchvision does not import here ({IMPORT_ERROR}); see this script's docstring for a venv "
              "where it does")
        return 0
    args.work = args.work.resolve()
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in BUILT]
    if unknown:
        p.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(BUILT)}")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "PYTHONWARNINGS": "ignore", "COLUMNS": "200"}
    meta = environment(args)
    prefix = [f"PYTHONPATH={os.environ['PYTHONPATH']}"] if os.environ.get("PYTHONPATH") else []
    meta["command"] = shlex.join([*prefix, "python", "bench/zoo.py", *sys.argv[1:]])
    meta["started_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    print(f"zoo: {len(names)} models, {args.threads} thread(s), timeout {args.timeout}s per model, work {args.work}")
    start = time.monotonic()
    entries = []
    for name in names:
        entry = bench_model(name, args, env)
        entry["commit"], entry["threads"] = meta["commit"], args.threads
        entry["ticketpack_source"], entry["note"] = meta["ticketpack_source"], args.note
        entry["run_started_at"] = meta["started_at"]
        entries.append(entry)
        print("  " + row(entry), flush=True)
    meta["wall_seconds"] = round(time.monotonic() - start, 1)
    write(args.results, meta, entries)
    return 0


def row(e: dict) -> str:
    f = e.get("failure")
    if f:
        return f"{e['model']}: FAILED at {f['step']} after {f['seconds']:.1f}s: {f['error']}"
    return (f"{e['model']}: size {e['size_ratio']:.3f}x dense at round {e['level']} "
            f"({100 * e['units']['fraction']:.1f}% units, {100 * e['weights_remaining']:.1f}% weights), "
            f"acc drop {e['acc_drop_pts']:+.1f} pts, search {e['steps']['search']['seconds']:.0f}s, "
            f"export {e['steps']['compact_export']['seconds']:.0f}s vs dense {e['steps']['dense_export']['seconds']:.0f}s")


def write(results: Path, meta: dict, entries: list[dict]) -> None:
    """zoo.json (merged: a --models run replaces only its models' entries) and zoo.md (rendered from it)."""
    results.mkdir(parents=True, exist_ok=True)
    path = results / "zoo.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    by_name = {e["model"]: e for e in old.get("models", [])}
    by_name.update({e["model"]: e for e in entries})
    order = [n for n in BUILT if n in by_name]
    runs = [*old.get("runs", []), meta][-10:]
    doc = {"runs": runs, "models": [by_name[n] for n in order]}
    path.write_text(json.dumps(doc, indent=1) + "\n")
    (results / "zoo.md").write_text(render(doc))
    print(f"wrote {path} and {results / 'zoo.md'}")


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def render(doc: dict) -> str:
    last = doc["runs"][-1]
    out = ["# The zoo users bring: torchvision models through search → compact export → validate --strict", "",
           (f"`{last['command']}` (run by `/work/zoo-venv/bin/python`, see bench/zoo.py's docstring). Recipe: "
           f"`search --granularity neuron --rounds {RECIPE['rounds']} --prune-rate {RECIPE['rate']} --epochs "
           f"{RECIPE['epochs']} --seed {RECIPE['seed']}`, from random init, on digits/clean upsampled to 3x32x32 in "
           "the model; then `export --level 0 --format dense`, `export --level R --format compact` (R the sparsest "
           "round) and `validate --strict`, each a subprocess, under one hard timeout per model."), "",
           f"Last run: {last['machine']}, {last['threads']} thread(s) per step, python {last['python']}, torch "
           f"{last['torch']}, torchvision {last['torchvision']}, onnxruntime {last['onnxruntime']}, torch-pruning "
           f"{last['torch_pruning']}; ticketpack from {last['ticketpack_source']}"
           + (f", commit {last['commit']}" if last["commit"] else "")
           + (f" with uncommitted changes in {', '.join(last['ticketpack_tree_modified'])}"
              if last["ticketpack_tree_modified"] else "") + "; load average at start "
           f"{' '.join(f'{x:.2f}' for x in last['load_average_at_start'])}; wall {last.get('wall_seconds')} s. "
           "The machine was shared with other jobs: seconds are one run each." + (f" {last['note']}" if last.get("note") else ""),
           "",
           ("size × dense: compact file bytes / dense export bytes (both ours, same run). units: dim-0 slices of "
           "the prunable weights that keep a weight (output layer excluded; layers left dense count as kept). "
           "acc drop: PyTorch test accuracy of round 0 minus round R, points (the search's figures; the compact "
           "ONNX file's own accuracy beside it); a dense accuracy marked *chance* (15% or less, 10 classes) means the "
           "short recipe did not train the model from random init, and its drop says nothing. export × dense: compact "
           "export seconds / dense export seconds."), "",
           ("| model | params | round | units | weights | size × dense | dense acc | acc drop (pts) | compact ONNX acc "
           "| search s | dense export s | compact export s | export × dense | validate s | layers left dense |"),
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for e in doc["models"]:
        s = e["steps"]
        sec = {k: (f"{v['seconds']:.1f}" if v.get("rc") == 0 else f"✗ {v['seconds']:.1f}") for k, v in s.items()}
        n_dense = "—" if e.get("dense_layers") is None else str(len(e["dense_layers"]))
        if e.get("failure"):
            out.append(f"| {e['model']} | {e.get('parameters', 0) / 1e6:.2f}M | — | — | — | — | — | — | — | "
                       f"{sec.get('search', '—')} | {sec.get('dense_export', '—')} | {sec.get('compact_export', '—')} "
                       f"| — | {sec.get('validate', '—')} | {n_dense} |")
            continue
        units = _pct(e["units"]["fraction"]) + ("" if e["units_at_most_10pct"] else " (>10%)")
        out.append(f"| {e['model']} | {e['parameters'] / 1e6:.2f}M | {e['level']} | {units} | "
                   f"{_pct(e['weights_remaining'])} | {e['size_ratio']:.3f} | {_pct(e['test_acc_dense'])}"
                   f"{' *chance*' if e['test_acc_dense'] <= 0.15 else ''} | "
                   f"{e['acc_drop_pts']:+.1f} | {_pct(e.get('onnx_test_acc_compact'))} | {sec['search']} | "
                   f"{sec['dense_export']} | {sec['compact_export']} | {e['export_ratio']:.2f} | {sec['validate']} | "
                   f"{n_dense} |")
    runs = sorted({e.get("run_started_at") for e in doc["models"]} - {None})
    if len(runs) > 1:  # a --models rerun replaced some rows
        out += ["", "Rows come from more than one run:"]
        for r in runs:
            meta = next((m for m in doc["runs"] if m.get("started_at") == r), {})
            rows = ", ".join(e["model"] for e in doc["models"] if e.get("run_started_at") == r)
            out.append(f"- {r} (`{meta.get('command', '?')}`, commit {meta.get('commit')}): {rows}")
    out += ["", "## What was built", ""]
    out += [f"- **{e['model']}**: `{e['built']}`, {e.get('parameters', 0):,} parameters" for e in doc["models"]]
    failures = [e for e in doc["models"] if e.get("failure")]
    out += ["", "## Failures", ""]
    if not failures:
        out.append("None.")
    for e in failures:
        f = e["failure"]
        what = "timed out" if f.get("timed_out") else f"failed after {f['seconds']:.1f} s" + (
            " (within 60 s)" if f.get("within_60s") else " (NOT within 60 s)")
        layer = {True: "names a layer", False: "names no layer of the model"}.get(f.get("names_a_layer"), "")
        out.append(f"- **{e['model']}** at `{f['step']}`: {what}{', ' + layer if layer else ''}: `{f['error']}`")
    out += ["", "## Layers left dense, with the search's reason", ""]
    for e in doc["models"]:
        dl = e.get("dense_layers")
        if dl is None:
            out.append(f"- **{e['model']}**: (no search result)")
            continue
        agree = "" if e.get("dense_layers_match_card") in (None, True) else " (the card's list differs!)"
        out.append(f"- **{e['model']}**: {len(dl)} layer(s){agree}" + ("" if dl else ": none"))
        out += [f"  - `{k}`: {v}" for k, v in dl.items()]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
