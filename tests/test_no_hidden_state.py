"""No hidden state: importing ticketpack changes nothing in the process; executors hand settings to their workers as
arguments, not through the parent's environment; a worker is tied to its parent explicitly and still dies with it;
the serve fast path is state of one app; the caches are objects with a bound, owned by what they serve; every stage
gives torch's RNG and thread count back as it found them; the CLI uses no private Typer module."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FIXTURES, tiny_config

ROOT = Path(__file__).resolve().parents[1]

# Run in a fresh interpreter: the process's environment, threads, signal handlers and (Linux) parent-death signal
# before and after importing argv[1] (comma-separated modules), with the modules in argv[2] (a JSON list) imported
# first, so that only what ticketpack's own modules do is measured.
_SNAPSHOT = textwrap.dedent("""
    import ctypes, importlib, json, os, signal, sys, threading

    def state():
        handlers = {}
        for sig in signal.valid_signals():
            try:
                handlers[int(sig)] = repr(signal.getsignal(sig))
            except (OSError, ValueError):
                pass
        pdeathsig = ctypes.c_int(-1)
        if sys.platform.startswith("linux"):
            ctypes.CDLL(None).prctl(2, ctypes.byref(pdeathsig), 0, 0, 0)  # PR_GET_PDEATHSIG
        return {"environ": dict(os.environ), "threads": sorted(t.name for t in threading.enumerate()),
                "thread_count": threading.active_count(), "signals": handlers, "pdeathsig": pdeathsig.value}

    for name in json.loads(sys.argv[2]):
        try:
            importlib.import_module(name)
        except Exception:
            pass
    before = state()
    for name in sys.argv[1].split(","):
        importlib.import_module(name)
    after = state()
    third_party = [m for m in sys.modules if m.split(".")[0] not in sys.stdlib_module_names
                   and m.split(".")[0] != "ticketpack" and not m.startswith("_")]
    print(json.dumps({"before": before, "after": after, "third_party": third_party}))
""")


def _snapshot(modules: list[str], preload: list[str] = (), env: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", _SNAPSHOT, ",".join(modules), json.dumps(list(preload))], cwd=ROOT,
                         capture_output=True, text=True, env=env, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _assert_unchanged(snap: dict) -> None:
    before, after = snap["before"], snap["after"]
    assert after["environ"] == before["environ"]
    assert after["threads"] == before["threads"] and after["thread_count"] == before["thread_count"]
    assert after["signals"] == before["signals"]
    assert after["pdeathsig"] == before["pdeathsig"] == 0


def test_importing_ticketpack_changes_nothing_even_where_the_old_lifeline_variable_is_set():
    # before issue 26, `import ticketpack` popped TICKETPACK_LIFELINE_PARENT and armed prctl plus a watcher thread
    env = {**os.environ, "TICKETPACK_LIFELINE_PARENT": str(os.getpid())}
    snap = _snapshot(["ticketpack"], env=env)
    _assert_unchanged(snap)
    assert snap["after"]["environ"]["TICKETPACK_LIFELINE_PARENT"] == str(os.getpid())
    assert "ticketpack-lifeline" not in snap["after"]["threads"]


@pytest.mark.slow
def test_importing_every_stage_changes_nothing_beyond_what_its_libraries_do():
    stages = ["ticketpack", "ticketpack.search", "ticketpack.transfer", "ticketpack.export.exporter",
              "ticketpack.evaluate", "ticketpack.runtime.validate", "ticketpack.runtime.predictor", "ticketpack.cli.app"]
    try:
        import fastapi  # noqa: F401

        stages.append("ticketpack.serve.app")
    except ModuleNotFoundError:
        pass
    libraries = _snapshot(stages)["third_party"]  # torch, onnx, typer, ...: imported first, then ticketpack's own
    assert "torch" in libraries
    _assert_unchanged(_snapshot(stages, preload=libraries))


# ------------------------------------------------------------------ workers: settings as arguments, tied to the parent

_PARENT = textwrap.dedent("""
    import multiprocessing, os, sys, time
    from ticketpack.core.lifeline import call_with_parent

    if __name__ == "__main__":
        before = dict(os.environ)
        child = multiprocessing.get_context("spawn").Process(
            target=call_with_parent, args=(os.getpid(), "time:sleep", 600))
        child.start()
        print(child.pid, dict(os.environ) == before, flush=True)
        time.sleep(600)
""")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_a_child_started_through_call_with_parent_is_armed_by_it_and_dies_with_a_killed_parent(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(_PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        child_pid, env_kept = parent.stdout.readline().split()
        child = int(child_pid)
        assert env_kept == "True"  # the parent's environment carried nothing to the child
        deadline = time.monotonic() + 60
        while _threads(child) < 2:  # the lifeline's watcher thread: armed by the child itself, before its target
            assert time.monotonic() < deadline and _alive(child), "the child never armed its lifeline"
            time.sleep(0.1)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 5.0
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    survived = _alive(child)
    if survived:
        os.kill(child, signal.SIGKILL)
    assert not survived, "the child outlived its SIGKILLed parent by 5 s"


def _threads(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return int(re.search(r"^Threads:\s+(\d+)", status, re.MULTILINE).group(1))


@pytest.mark.slow
def test_a_local_executor_with_two_workers_leaves_the_environment_alone(digits_ticket, tmp_path):
    from ticketpack.transfer import TransferConfig, run_transfer

    before = dict(os.environ)
    during = []
    cfg = TransferConfig.model_validate({"ticket": str(digits_ticket), "target": "rot45", "inits": ["ticket", "dense"],
                                         "levels": [1], "seeds": 1, "train": {"epochs": 1}})
    report = run_transfer(cfg, tmp_path / "run", jobs=2, on_event=lambda e: during.append(dict(os.environ)))
    assert len(report.results) == 2 and len(during) == 3  # planned, then each job's end, while the workers ran
    assert all(env == before for env in during)
    assert dict(os.environ) == before


# ------------------------------------------------------------------ serve: the fast path belongs to its app


def test_the_serve_fast_path_is_state_of_each_app_not_of_the_module(exported_digits):
    pytest.importorskip("fastapi")
    import ticketpack.serve.app as serve_app
    from ticketpack.serve.config import ModelSource, ServeConfig
    from ticketpack.serve.models import load_models

    config = ServeConfig(models=[ModelSource(name="digits", path=exported_digits)])
    models = load_models(config, validate=False)
    route = serve_app.create_app(config, models, fast_path=False)
    fast = serve_app.create_app(config, models)
    assert route.fast is None and fast.fast is not None  # made one after the other: neither changed the other
    assert not any(isinstance(v, bool) for k, v in vars(serve_app).items() if k.isupper())  # no module-level switch


# ------------------------------------------------------------------ caches: bounded objects with an owner


def test_a_feature_cache_holds_at_most_its_bound_least_recently_used_first_out():
    from ticketpack.data.domain import FeatureCache

    cache = FeatureCache(max_bytes=100)
    assert FeatureCache().max_bytes == 1 << 30  # the default: 1 GiB of model input
    cache.put(("a",), "A", 40)
    cache.put(("b",), "B", 40)
    assert cache.get(("a",)) == "A"  # a is now the most recently used
    cache.put(("c",), "C", 40)  # over 100: b, the least recently used, goes
    assert cache.get(("b",)) is None and cache.get(("a",)) == "A" and cache.get(("c",)) == "C"
    assert len(cache) == 2 and cache.nbytes == 80 <= cache.max_bytes
    cache.put(("huge",), "H", 101)  # larger than the bound: not kept, nothing else dropped for it
    assert cache.get(("huge",)) is None and len(cache) == 2
    cache.put(("a",), "A2", 50)  # replacing an entry counts its bytes once
    assert cache.nbytes == 90 and cache.get(("a",)) == "A2"
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0


def _count_featurizations(monkeypatch) -> list[int]:
    from ticketpack.data.kinds.text import TextPreprocessing

    calls = [0]
    original = TextPreprocessing.transform_all

    def counting(self, raw, where):
        calls[0] += 1
        return original(self, raw, where)

    monkeypatch.setattr(TextPreprocessing, "transform_all", counting)
    return calls


def test_a_domain_is_featurized_once_only_while_a_cache_is_in_use(monkeypatch):
    from ticketpack.data import get
    from ticketpack.data.base import SplitConfig
    from ticketpack.data.domain import FeatureCache

    calls = _count_featurizations(monkeypatch)
    ds = get(str(FIXTURES / "reviews"))
    first = ds.load("books", 0, SplitConfig())
    ds.load("books", 0, SplitConfig())
    assert calls[0] == 2  # no cache in use: nothing kept between loads (no module keeps one)
    features = FeatureCache()
    with features.using():
        ds.load("books", 0, SplitConfig())
        again = ds.load("books", 0, SplitConfig())
    assert calls[0] == 3 and len(features) == 1 and features.nbytes > 0
    assert np.array_equal(again.train.x, first.train.x) and np.array_equal(again.test.y, first.test.y)
    ds.load("books", 0, SplitConfig())  # the block is over: the cache is no longer consulted
    assert calls[0] == 4 and len(features) == 1


def test_a_transfer_worker_reuses_its_featurized_domains_across_runs(text_ticket, tmp_path, monkeypatch):
    from ticketpack.core.fileio import write_model
    from ticketpack.transfer import TransferConfig, layout
    from ticketpack.transfer.executors import LocalExecutor, _Contexts
    from ticketpack.transfer.run import plan_run

    cfg = TransferConfig(ticket=str(text_ticket), target="electronics", inits=["dense"], seeds=1)
    roots = []
    for name in ("first", "second"):
        plan, _ = plan_run(cfg)
        (tmp_path / name).mkdir()
        write_model(layout.plan(tmp_path / name), plan)
        roots.append(str(tmp_path / name))
    monkeypatch.setattr("ticketpack.transfer.jobs.execute", lambda ctx, job, first_in_worker=False: None)
    calls = _count_featurizations(monkeypatch)
    worker = _Contexts()
    assert worker.features.max_bytes == 1 << 30
    worker.execute(roots[0], "plan-1", {"job_id": "x"})
    assert calls[0] == 2 and len(worker.features) == 2  # electronics (target) and books (source)
    worker.execute(roots[1], "plan-2", {"job_id": "y"})  # another run: a new context, the same featurized domains
    assert calls[0] == 2 and worker.ctx.root == Path(roots[1]).resolve()
    assert LocalExecutor(1, 1).features is not LocalExecutor(1, 1).features  # each executor owns its own


def test_model_objects_are_a_bounded_registry_that_can_be_cleared():
    from torch import nn

    from ticketpack.core.errors import TicketpackError
    from ticketpack.models import factory

    assert isinstance(factory.MODEL_OBJECTS, factory.ModelObjects) and factory.MODEL_OBJECTS.max_entries == 16
    objects = factory.ModelObjects(max_entries=2)
    makers = {f"python:m{i}": (lambda i=i: nn.Linear(i + 1, 2)) for i in range(3)}
    for ref, make in makers.items():
        objects.add(ref, make)
    assert len(objects) == 2 and "python:m0" not in objects and objects.get("python:m2") is makers["python:m2"]
    objects.clear()
    assert len(objects) == 0

    def tiny(**_):
        return nn.Linear(2, 2)

    ref = factory.register_object(tiny)  # the process's registry: resolvable until cleared
    assert factory.resolve(ref)[0] is tiny
    saved = dict(factory.MODEL_OBJECTS._factories)
    try:
        factory.MODEL_OBJECTS.clear()
        with pytest.raises(TicketpackError, match="another session"):
            factory.resolve(ref)
    finally:
        factory.MODEL_OBJECTS._factories.update(saved)


# ------------------------------------------------------------------ torch's RNG and threads: the caller's again


@pytest.fixture
def odd_threads():
    """torch set to a thread count no stage asks for, so that a stage that left its own would show."""
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    torch.manual_seed(1234)
    yield 3
    torch.set_num_threads(before)


def _same_rng(a: torch.Tensor) -> bool:
    return torch.equal(a, torch.get_rng_state())


def test_search_restores_torchs_rng_and_threads(odd_threads, tmp_path):
    from ticketpack.search import search

    rng = torch.get_rng_state()
    search(tiny_config(train={"epochs": 1}, prune={"rounds": 1}), tmp_path / "t")
    assert _same_rng(rng) and torch.get_num_threads() == odd_threads


def test_export_restores_torchs_rng_and_threads(odd_threads, digits_ticket, tmp_path):
    from ticketpack.export.exporter import export_model

    rng = torch.get_rng_state()
    export_model(digits_ticket, tmp_path / "m.onnx", level=1, threads=1)
    assert _same_rng(rng) and torch.get_num_threads() == odd_threads


def test_transfer_restores_torchs_rng_and_threads(odd_threads, digits_ticket, tmp_path):
    from ticketpack.transfer import TransferConfig, run_transfer

    rng = torch.get_rng_state()
    inside = []
    cfg = TransferConfig.model_validate({"ticket": str(digits_ticket), "target": "rot45", "inits": ["ticket", "dense"],
                                         "levels": [1], "seeds": 1, "train": {"epochs": 1}, "threads": 1})
    report = run_transfer(cfg, tmp_path / "run", on_event=lambda e: inside.append(
        (torch.get_rng_state(), torch.get_num_threads())))
    assert len(report.results) == 2
    assert not torch.equal(inside[-1][0], rng) and inside[-1][1] == 1  # the jobs ran in this process, seeded, 1 thread
    assert _same_rng(rng) and torch.get_num_threads() == odd_threads


def test_deterministic_training_leaves_the_environment_as_it_found_it(monkeypatch):
    from ticketpack.training.device import deterministic_scope

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = torch.are_deterministic_algorithms_enabled()
    with deterministic_scope(True):
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8" and torch.are_deterministic_algorithms_enabled()
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ and torch.are_deterministic_algorithms_enabled() == before
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # the user's own: kept
    with deterministic_scope(True):
        pass
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


# ------------------------------------------------------------------ the CLI: Typer's public API


def test_the_cli_uses_no_private_typer_or_click_module():
    private = re.compile(r"typer\._\w+|typer\.main\._|_typer\b|click\.globals|registered_commands|__mro__")
    found = {}
    for path in sorted((ROOT / "ticketpack" / "cli").glob("*.py")):
        text = path.read_text()
        hits = [m.group(0) for m in private.finditer(text)]
        if hits:
            found[path.name] = hits
    # the one exception, isolated and documented: click's UsageError/ClickException, which typer raises but does
    # not export, read off the public typer.BadParameter
    assert found == {"app.py": ["__mro__"]}
    source = (ROOT / "ticketpack" / "cli" / "app.py").read_text()
    function = source[source.index("def _click_exceptions"):source.index("_UsageError, _ClickException =")]
    assert "__mro__" in function
