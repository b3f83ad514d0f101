"""`ticketpack transfer` and `ticketpack report`: strategies start where they say, the grid, resume, executors,
bad input, and the report."""

from __future__ import annotations

import shutil
import sys

import pytest
import torch
from conftest import (
    FIXTURES,
    copy_with_flipped_byte,
    copy_with_schema_version,
    text_config,
)
from typer.testing import CliRunner

from ticketpack.cli.app import app
from ticketpack.core.config_files import build_config
from ticketpack.core.errors import TicketpackError
from ticketpack.pruning import mask as masks
from ticketpack.search import Ticket, search
from ticketpack.transfer import (
    INITS,
    TransferConfig,
    TransferReport,
    TransferRun,
    layout,
    open_executor,
    run_transfer,
)
from ticketpack.transfer.jobs import JobContext
from ticketpack.transfer.run import plan_run

runner = CliRunner()
ALL = ["ticket", "random-reinit", "finetune", "random-mask", "dense", "target-ticket"]


def _cfg(ticket, **kw) -> TransferConfig:
    base = {"ticket": str(ticket), "target": "rot45", "levels": [1, 3], "seeds": 2, "train": {"epochs": 1}}
    return TransferConfig.model_validate({**base, **kw})


def _same_state(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def _same_mask(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k].bool(), b[k].bool()) for k in a)


def _scores(report: TransferReport) -> dict:
    return {r.job_id: (r.target_test_accuracy, r.source_test_accuracy, r.best_iteration) for r in report.results}


@pytest.fixture(scope="session")
def grid(digits_ticket, tmp_path_factory):
    """Every strategy, levels 1 and 3, two seeds, one epoch per job: a finished run shared by the read-only tests."""
    out = tmp_path_factory.mktemp("transfer") / "grid"
    report = run_transfer(_cfg(digits_ticket, inits=ALL), out)
    return out, report


@pytest.fixture(scope="session")
def ctx(grid) -> JobContext:
    return JobContext.load(grid[0])


# ------------------------------------------------------------------ where each strategy starts


def test_ticket_starts_from_the_rewind_point_under_the_source_mask(ctx):
    start = INITS.create("ticket").start(ctx, 3, 0)
    assert _same_state(start.state, ctx.ticket.rewind_state())
    assert _same_mask(start.mask, ctx.ticket.mask(3))


def test_finetune_starts_from_the_rounds_source_trained_weights(ctx):
    start = INITS.create("finetune").start(ctx, 3, 0)
    assert _same_state(start.state, ctx.ticket.trained_state(3))
    assert _same_mask(start.mask, ctx.ticket.mask(3))


def test_random_reinit_keeps_the_mask_with_a_fresh_init_shared_with_dense(ctx):
    start = INITS.create("random-reinit").start(ctx, 3, 0)
    assert _same_mask(start.mask, ctx.ticket.mask(3))
    theta_k = ctx.ticket.rewind_state()
    assert not torch.equal(start.state["hidden.0.weight"], theta_k["hidden.0.weight"])
    assert _same_state(start.state, INITS.create("dense").start(ctx, 0, 0).state)
    other_seed = INITS.create("random-reinit").start(ctx, 3, 1).state
    assert not torch.equal(start.state["hidden.0.weight"], other_seed["hidden.0.weight"])


def test_random_mask_has_the_same_per_layer_counts_but_another_mask(ctx):
    source = ctx.ticket.mask(3)
    start = INITS.create("random-mask").start(ctx, 3, 0)
    assert _same_state(start.state, ctx.ticket.rewind_state())
    for name, m in source.items():
        assert int(start.mask[name].sum()) == int(m.sum())
    assert masks.digest(start.mask) != masks.digest(source)
    again = INITS.create("random-mask").start(ctx, 3, 0).mask
    assert masks.digest(again) == masks.digest(start.mask)


def test_random_mask_of_a_neuron_ticket_keeps_whole_units_and_their_counts(tmp_path):
    from conftest import tiny_config

    from ticketpack.pruning.structure import per_unit
    from ticketpack.search import search

    search(tiny_config(prune={"rounds": 2, "rate": 0.5, "granularity": "neuron"}, train={"epochs": 1}), tmp_path / "t")
    _, ctx = plan_run(_cfg(tmp_path / "t", levels=[2]))
    source, start = ctx.ticket.mask(2), INITS.create("random-mask").start(ctx, 2, 0)
    assert {n: int(m.sum()) for n, m in start.mask.items()} == {n: int(m.sum()) for n, m in source.items()}
    assert masks.digest(start.mask) != masks.digest(source)
    for g in ctx.structure().groups:
        for m in (source, start.mask):
            alive_in, alive_out = per_unit(m, g, "out", "any"), per_unit(m, g, "in", "any")
            assert torch.equal(alive_in, alive_out) and int(alive_in.sum()) < g.size
        assert int(per_unit(start.mask, g, "out", "any").sum()) == int(per_unit(source, g, "out", "any").sum())


def test_dense_trains_without_a_mask(ctx):
    assert INITS.create("dense").start(ctx, 0, 0).mask is None


def test_target_ticket_uses_the_target_search_round_nearest_in_weights_remaining(ctx):
    start = INITS.create("target-ticket").start(ctx, 3, 0)
    found = Ticket.load(layout.target_ticket(ctx.root))
    assert found.manifest.dataset.source_domain == "rot45"
    assert start.target_round == 3
    assert _same_mask(start.mask, found.mask(3))
    assert _same_state(start.state, found.rewind_state())
    assert masks.density(start.mask) == pytest.approx(ctx.ticket.record(3).weights_remaining)


def test_every_strategy_has_a_docstring():
    for name in INITS:
        assert len(INITS.doc(name)) > 30, name


# ------------------------------------------------------------------ the grid and its files


def test_grid_reports_every_level_strategy_and_seed(grid):
    out, report = grid
    assert report.jobs_finished == report.jobs_total == 2 * (2 * 5 + 1)
    cells = {(c.level, c.init): c for c in report.cells}
    assert set(cells) == {(lv, i) for lv in (1, 3) for i in ALL if i != "dense"}
    assert all(c.n == 2 and 0 <= c.target_test_mean <= 1 and c.target_test_std >= 0 for c in cells.values())
    assert report.dense is not None and report.dense.n == 2 and report.dense.weights_remaining == 1.0
    rows = layout.results_csv(out).read_text().splitlines()
    assert len(rows) == 1 + report.jobs_total and rows[0].startswith("job_id,level,weights_remaining")
    assert layout.plot(out).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert TransferReport.model_validate_json(layout.report(out).read_text()) == report


def test_saved_weights_keep_the_mask_and_the_contract_reads_them_back(grid, digits_ticket):
    run = TransferRun.load(grid[0])
    state, mask, result = run.weights(3, "ticket", 1)
    assert _same_mask(mask, Ticket.load(digits_ticket).mask(3))
    assert all((state[name][~m] == 0).all() for name, m in mask.items())
    assert result.weights_remaining == pytest.approx(masks.density(mask)) and result.init == "ticket"
    assert run.weights("13%", "ticket", 1)[2].job_id == result.job_id == "L03-ticket-s1"
    dense_state, dense_mask, dense_result = run.weights(0, "dense", 0)
    assert dense_mask is None and dense_result.level == 0
    assert run.target_data().domain == "rot45" and len(run.target_data().test) == len(run.source_data().test)


def test_asking_for_a_job_the_run_lacks_lists_the_available_ones(grid):
    with pytest.raises(TicketpackError, match=r"available: .*\(level 1, ticket, seed 0\)"):
        TransferRun.load(grid[0]).weights(2, "ticket", 0)


def test_a_run_of_another_schema_version_is_refused(grid, tmp_path):
    run = copy_with_schema_version(grid[0], tmp_path / "run", "plan.json", 99)
    with pytest.raises(TicketpackError, match="schema version 99"):
        TransferRun.load(run)


def test_strategies_share_the_data_order_of_a_seed_and_dense_differs_by_seed(grid):
    by_id = {r.job_id: r for r in grid[1].results}
    assert by_id["L01-ticket-s0"].train_seed == by_id["L03-random-mask-s0"].train_seed
    assert by_id["L00-dense-s0"].train_seed != by_id["L00-dense-s1"].train_seed


# ------------------------------------------------------------------ resume and executors


def test_resume_reruns_only_the_missing_job_and_reproduces_it(grid, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(grid[0], run)
    shutil.rmtree(layout.job_dir(run, "L03-finetune-s1"))
    kept = layout.job_result(run, "L01-ticket-s0").stat().st_mtime_ns
    ran = []
    report = run_transfer(_cfg(grid[1].ticket, inits=ALL), run, resume=True,
                          on_event=lambda ev: ran.append(ev.job.job_id) if ev.kind == "job_end" else None)
    assert ran == ["L03-finetune-s1"]
    assert layout.job_result(run, "L01-ticket-s0").stat().st_mtime_ns == kept
    assert _scores(report) == _scores(grid[1])


def test_resume_with_other_options_says_what_differs(grid, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(grid[0], run)
    with pytest.raises(TicketpackError, match="differs in: .*levels"):
        run_transfer(_cfg(grid[1].ticket, inits=ALL, levels=[2]), run, resume=True)


@pytest.mark.slow
def test_two_local_processes_give_the_same_results_as_one(digits_ticket, tmp_path):
    cfg = _cfg(digits_ticket, inits=["ticket", "dense"], levels=[3], seeds=1)
    one = run_transfer(cfg, tmp_path / "one", jobs=1)
    two = run_transfer(cfg, tmp_path / "two", jobs=2)
    assert _scores(one) == _scores(two) and len(two.results) == 2
    assert [r.first_in_worker for r in one.results] == [True, False]  # in-process: the first job
    assert 1 <= sum(r.first_in_worker for r in two.results) <= 2  # each worker's first (one may have run both)


@pytest.mark.slow
def test_an_executor_opened_once_serves_several_runs_with_the_same_results(digits_ticket, tmp_path):
    first = _cfg(digits_ticket, inits=["ticket", "dense"], levels=[3], seeds=1)
    second = _cfg(digits_ticket, inits=["ticket", "random-mask"], levels=[1], seeds=1)
    alone = [run_transfer(cfg, tmp_path / f"alone{i}", jobs=2) for i, cfg in enumerate((first, second))]
    with open_executor("local", jobs=2) as workers:
        shared = [run_transfer(first, tmp_path / "shared0", executor=workers)]
        pids = [p.pid for p in workers._procs]
        shared.append(run_transfer(second, tmp_path / "shared1", executor=workers))
        assert [p.pid for p in workers._procs] == pids and len(pids) == 2  # started once, for both runs
    assert [_scores(r) for r in shared] == [_scores(r) for r in alone]
    assert workers._procs == []  # none outlives the executor


@pytest.mark.slow
def test_a_run_that_fails_in_a_shared_executor_leaves_the_next_run_whole(digits_ticket, tmp_path):
    cfg = _cfg(digits_ticket, inits=["ticket", "dense"], levels=[3], seeds=2)

    def stop(event):
        if event.kind == "job_end":
            raise KeyError("stopped by the caller")

    with open_executor("local", jobs=2) as workers:
        with pytest.raises(KeyError):
            run_transfer(cfg, tmp_path / "failed", executor=workers, on_event=stop)
        assert workers._procs == []  # the failed run's queued and running jobs went with its workers
        report = run_transfer(cfg, tmp_path / "next", executor=workers)
    assert _scores(report) == _scores(run_transfer(cfg, tmp_path / "alone"))


def test_a_jobs_context_reads_each_ticket_file_once_and_hands_out_what_a_fresh_load_gives(ctx):
    fresh = Ticket.load(ctx.ticket.root)
    assert ctx.ticket.mask(1) is ctx.ticket.mask(1) and _same_mask(ctx.ticket.mask(1), fresh.mask(1))
    assert ctx.ticket.rewind_state() is ctx.ticket.rewind_state()
    assert _same_state(ctx.ticket.rewind_state(), fresh.rewind_state())
    assert fresh.mask(1) is not fresh.mask(1)  # a ticket not kept loaded reads its files each time


def test_jobs_given_beside_an_open_executor_are_refused_before_anything_is_written(digits_ticket, tmp_path):
    with open_executor("local", jobs=1) as workers:
        with pytest.raises(TicketpackError, match="belong to open_executor"):
            run_transfer(_cfg(digits_ticket), tmp_path / "run", jobs=2, executor=workers)
    assert not (tmp_path / "run").exists()


def test_the_same_directory_planned_anew_is_a_new_context_for_a_worker(grid, tmp_path):
    from ticketpack.transfer.executors import _Contexts

    run = tmp_path / "run"
    shutil.copytree(grid[0], run)
    contexts = _Contexts()
    a = contexts.get(str(run), JobContext.load(run).plan_digest)
    assert contexts.get(str(run), a.plan_digest) is a
    b = contexts.get(str(run), "another plan")
    assert b is not a and contexts.get(str(grid[0]), a.plan_digest) is not b


@pytest.mark.slow
def test_ray_executor_runs_the_same_jobs_on_a_local_ray_instance(digits_ticket, tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'ticketpack[ray]')")
    cfg = _cfg(digits_ticket, inits=["ticket", "random-mask"], levels=[3], seeds=1)
    local = run_transfer(cfg, tmp_path / "local")
    ray_run = run_transfer(cfg, tmp_path / "ray", jobs=2, executor="ray")
    assert _scores(ray_run) == _scores(local) and len(ray_run.results) == 2


# ------------------------------------------------------------------ other domains and datasets


def test_target_may_be_the_tickets_own_source_domain(digits_ticket):
    plan, ctx = plan_run(_cfg(digits_ticket, target="clean"))
    assert plan.source == plan.target == "clean" and ctx.source is ctx.target


def test_a_text_ticket_transfers_to_another_review_domain(text_ticket, tmp_path):
    cfg = TransferConfig(ticket=str(text_ticket), target="electronics", inits=["ticket", "random-mask", "dense"],
                         levels=["25%"], seeds=1)
    report = run_transfer(cfg, tmp_path / "run")
    assert report.levels == [2] and report.source == "books" and report.target == "electronics"
    assert {r.init for r in report.results} == {"ticket", "random-mask", "dense"}


def test_config_file_sets_options_and_flags_win(tmp_path):
    path = tmp_path / "transfer.toml"
    path.write_text('ticket = "t"\ntarget = "rot45"\ninits = ["ticket", "dense"]\nseeds = 5\n[train]\nepochs = 4\n')
    cfg = build_config(TransferConfig, path, {"seeds": 2, "train.lr": 0.01})
    assert cfg.inits == ["ticket", "dense"] and cfg.seeds == 2 and cfg.train.epochs == 4 and cfg.train.lr == 0.01


def test_train_overrides_replace_only_what_they_name():
    from ticketpack.training import TrainConfig
    from ticketpack.transfer import TrainOverrides

    base = TrainConfig(iterations=50, lr=0.1)
    merged = TrainOverrides(epochs=3).apply(base)
    assert merged.epochs == 3 and merged.iterations is None and merged.lr == 0.1


# ------------------------------------------------------------------ bad input: one line, exit 2, nothing written


def _invoke_fails(args: list[str], out, message: str) -> None:
    result = runner.invoke(app, ["transfer", *args, "--out", str(out), "--epochs", "1"])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert message in text and "Traceback" not in result.output, result.output
    assert not out.exists()


def test_unknown_target_domain_exits_2(digits_ticket, tmp_path):
    _invoke_fails([str(digits_ticket), "--target", "rot999"], tmp_path / "r", "unknown digits domain 'rot999'")


def test_unknown_strategy_exits_2_with_the_known_ones(digits_ticket, tmp_path):
    _invoke_fails([str(digits_ticket), "--target", "rot45", "--init", "ticket,lucky"], tmp_path / "r",
                  "unknown initialization strategy 'lucky'; known: dense, finetune")


def test_ticket_failing_its_hash_check_exits_2(digits_ticket, tmp_path):
    bad = copy_with_flipped_byte(digits_ticket, tmp_path / "ticket", "round_02/trained.safetensors", xor=0xFF)
    _invoke_fails([str(bad), "--target", "rot45"], tmp_path / "r", "fails its sha256 check")


def test_target_dataset_with_other_labels_exits_2(text_ticket, tmp_path):
    other = tmp_path / "reviews"
    other.mkdir()
    lines = (FIXTURES / "reviews" / "electronics.jsonl").read_text().replace('"pos"', '"good"').replace('"neg"', '"bad"')
    (other / "electronics.jsonl").write_text(lines)
    _invoke_fails([str(text_ticket), "--target", "electronics", "--dataset", str(other)], tmp_path / "r",
                  "has labels ['bad', 'good'] that the ticket does not have")


def test_target_ticket_on_a_target_that_lacks_one_of_the_tickets_labels_exits_2(tmp_path):
    data = tmp_path / "reviews"
    data.mkdir()
    books = (FIXTURES / "reviews" / "books.jsonl").read_text().splitlines()
    # a third class on the source only: every third review of books becomes "mixed"
    (data / "books.jsonl").write_text("\n".join(
        r.replace('"pos"', '"mixed"').replace('"neg"', '"mixed"') if i % 3 == 0 else r
        for i, r in enumerate(books)) + "\n")
    shutil.copy(FIXTURES / "reviews" / "electronics.jsonl", data / "electronics.jsonl")
    ticket = tmp_path / "ticket"
    search(text_config().model_copy(update={"dataset": str(data)}), ticket)
    _invoke_fails([str(ticket), "--target", "electronics", "--init", "ticket,target-ticket"], tmp_path / "r",
                  "has no rows of ['mixed'], which the ticket has")


def test_target_dataset_of_another_input_kind_exits_2(text_ticket, tmp_path):
    _invoke_fails([str(text_ticket), "--target", "clean", "--dataset", "digits"], tmp_path / "r",
                  "holds image inputs but the ticket was made for text inputs")


def test_missing_level_exits_2(digits_ticket, tmp_path):
    _invoke_fails([str(digits_ticket), "--target", "rot45", "--levels", "1,9"], tmp_path / "r", "ticket has no round 9")


@pytest.mark.parametrize(("address", "why"), [
    ("not a url::", "'not a url:' is not a host name or IP address"),
    ("ray://:abc", "no host before the port"),
    ("ray://head:abc", "the port 'abc' is not a number from 1 to 65535"),
    ("10.0.0.1:70000", "the port '70000' is not a number"),
    ("http://head:6379", "unknown scheme 'http://'"),
    ("head", "no port"),
])
def test_a_malformed_ray_address_is_named_before_ray_sees_it(address, why):
    from ticketpack.transfer.executors import parse_ray_address

    with pytest.raises(TicketpackError, match="expected HOST:PORT, ray://HOST:PORT or auto") as info:
        parse_ray_address(address)
    assert why in str(info.value)


@pytest.mark.parametrize(("address", "parsed"), [
    ("auto", None), ("10.0.0.1:6379", ("10.0.0.1", 6379)), ("ray://head-node.local:10001", ("head-node.local", 10001)),
    ("[::1]:6379", ("::1", 6379)), ("ray://[fe80::1]:10001/", ("fe80::1", 10001)),
])
def test_well_formed_ray_addresses_parse(address, parsed):
    from ticketpack.transfer.executors import parse_ray_address

    assert parse_ray_address(address) == parsed


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1"])
def test_a_refused_ray_address_fails_at_once_not_after_the_timeout(digits_ticket, tmp_path, address):
    import time

    pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'ticketpack[ray]')")
    start = time.monotonic()
    _invoke_fails([str(digits_ticket), "--target", "rot45", "--executor", "ray", "--ray-address", address,
                   "--ray-timeout", "120"], tmp_path / "r", "connection refused (nothing listens on port 1 of 127.0.0.1)")
    assert time.monotonic() - start < 60  # the probe answered; waiting out --ray-timeout would take 120 s


def test_ray_executor_without_ray_exits_2(digits_ticket, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ImportError
    _invoke_fails([str(digits_ticket), "--target", "rot45", "--executor", "ray"], tmp_path / "r",
                  "pip install 'ticketpack[ray]'")


def test_existing_run_is_neither_overwritten_nor_deleted_without_force(grid, tmp_path):
    keep = tmp_path / "precious"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    result = runner.invoke(app, ["transfer", grid[1].ticket, "--target", "rot45", "--out", str(keep), "--force"])
    assert result.exit_code == 2 and (keep / "notes.txt").exists(), result.output
    again = runner.invoke(app, ["transfer", grid[1].ticket, "--target", "rot45", "--out", str(grid[0])])
    assert again.exit_code == 2 and "--resume" in again.output


# ------------------------------------------------------------------ `ticketpack report`


def test_report_rerenders_table_csv_and_plot_from_the_jobs(grid, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(grid[0], run)
    for path in (layout.report(run), layout.results_csv(run), layout.plot(run)):
        path.unlink()
    result = runner.invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert "random-" in result.output and "dense (100%)" in result.output
    assert layout.plot(run).exists() and layout.results_csv(run).exists()
    assert _scores(TransferReport.model_validate_json(layout.report(run).read_text())) == _scores(grid[1])


def test_report_json_prints_only_the_report(grid):
    result = runner.invoke(app, ["report", str(grid[0]), "--json"])
    assert result.exit_code == 0
    assert TransferReport.model_validate_json(result.stdout).jobs_finished == grid[1].jobs_finished


def test_report_of_a_directory_that_is_not_a_run_exits_2(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "not a transfer run" in result.output


# ------------------------------------------------------------------ a given target ticket, kept weights


def test_a_given_target_ticket_replaces_the_search_and_gives_the_same_jobs(grid, digits_ticket, tmp_path):
    out, report = grid
    given = layout.target_ticket(out)
    cfg = _cfg(digits_ticket, inits=["ticket", "target-ticket"], target_ticket=str(given))
    reused = run_transfer(cfg, tmp_path / "reused")
    plan = TransferRun.load(tmp_path / "reused").plan
    assert plan.target_ticket == str(given.resolve()) and plan.target_ticket_manifest_sha256
    assert all(j.kind == "train" for j in plan.jobs)
    assert not layout.target_ticket(tmp_path / "reused").exists()  # nothing searched
    before = {k: v for k, v in _scores(report).items() if "target-ticket" in k or "-ticket-" in k}
    assert before and {k: _scores(reused)[k] for k in before} == before
    cost = {c.init: c for c in reused.costs}["target-ticket"]
    assert cost.search_iterations == {c.init: c for c in report.costs}["target-ticket"].search_iterations > 0


def test_a_target_ticket_found_by_another_search_is_refused_naming_what_differs(grid, digits_ticket, tmp_path):
    given = layout.target_ticket(grid[0])
    cfg = _cfg(digits_ticket, inits=["target-ticket"], target_ticket=str(given), train={"epochs": 2})
    with pytest.raises(TicketpackError, match=r"differs in: train"):
        run_transfer(cfg, tmp_path / "other")
    with pytest.raises(TicketpackError, match="used only by strategies"):
        run_transfer(_cfg(digits_ticket, inits=["ticket"], target_ticket=str(given)), tmp_path / "unused")
    run_transfer(_cfg(digits_ticket, inits=["target-ticket"], levels=[1], seeds=1), tmp_path / "shallow")
    shallow = str(layout.target_ticket(tmp_path / "shallow"))  # searched 1 round deep
    with pytest.raises(TicketpackError, match=r"has 1 pruned round\(s\); this run needs 3"):
        run_transfer(_cfg(digits_ticket, inits=["target-ticket"], target_ticket=shallow), tmp_path / "deeper")


def test_without_kept_weights_a_run_reports_but_cannot_be_exported(digits_ticket, tmp_path):
    cfg = _cfg(digits_ticket, inits=["ticket"], levels=[1], seeds=1, keep_weights=False)
    report = run_transfer(cfg, tmp_path / "run")
    assert len(report.results) == 1 and report.results[0].weights_file_sha256 is None
    assert not layout.job_weights(tmp_path / "run", report.results[0].job_id).exists()
    assert not layout.job_mask(tmp_path / "run", report.results[0].job_id).exists()
    assert report.results[0].mask_sha256 and report.results[0].mask_file_sha256 is None
    with pytest.raises(TicketpackError, match="keep_weights off"):
        TransferRun.load(tmp_path / "run").weights(1, "ticket", 0)


# ------------------------------------------------------------------ what a report says of its numbers


def test_every_table_of_a_report_lists_strategies_in_one_order(grid):
    from ticketpack.transfer.report import markdown_table
    from ticketpack.transfer.strategies import ordered

    report = grid[1]
    want = ordered(ALL)
    assert want[0] == "ticket" and want[-1] == "dense"
    assert [c.init for c in report.costs] == want
    others = list(dict.fromkeys(p.other for p in report.paired))
    assert others == [i for i in want if i != "ticket"]
    header = markdown_table(report).splitlines()[0]
    assert [h.strip() for h in header.strip("|").split("|")][2:] == [i for i in want if i != "dense"]


def test_a_resolved_difference_is_marked_in_plain_text_in_every_rendering(grid):
    from rich.console import Console

    from ticketpack.cli.report import paired_table
    from ticketpack.transfer.pooling import RESOLVED
    from ticketpack.transfer.report import markdown_table

    report = grid[1]
    first = report.paired[0].model_copy(update={"resolved": True, "low": 0.01, "high": 0.03, "mean": 0.02})
    rest = [p.model_copy(update={"resolved": False}) for p in report.paired[1:]]
    marked = report.model_copy(update={"paired": [first, *rest]})
    text = markdown_table(marked)
    assert text.count(RESOLVED + " |") == 1 and "* resolved" in text
    console = Console(record=True, width=120, color_system=None, force_terminal=False)
    console.print(paired_table(marked))
    rich_text = console.export_text()
    assert "+2.0" in rich_text and rich_text.count("*") == 2 and "* resolved" in rich_text  # the cell, the legend
    assert '"resolved":true' in marked.model_dump_json()


def test_costs_leave_out_a_workers_start_up_and_say_how_busy_the_machine_was(grid):
    import statistics

    from ticketpack.transfer.report import cost_table

    report = grid[1]
    # in-process, the target-ticket search ran first and paid the start-up: no training job carries it
    assert not any(r.first_in_worker for r in report.results)
    for r in report.results:
        assert r.cpu_seconds is not None and r.cpu_seconds > 0 and r.threads >= 1 and r.load_1min is not None
    ticket = next(c for c in report.costs if c.init == "ticket")
    warm = [r.seconds for r in report.results if r.init == "ticket" and not r.first_in_worker]
    assert ticket.seconds_mean == pytest.approx(statistics.fmean(warm), abs=1e-3)
    assert ticket.cpu_seconds_mean is not None and ticket.threads is not None
    assert report.machine["cores"] >= 1 and report.machine["load_mean"] is not None
    assert "CPU-seconds per model" in cost_table(report) and "1-minute load" in cost_table(report)


def test_a_target_tickets_cost_is_its_whole_search(grid):
    from ticketpack.search import load_manifest

    report = grid[1]
    found = load_manifest(layout.target_ticket(grid[0]))
    assert found.setup_seconds is not None and found.setup_cpu_seconds is not None
    assert all(r.wall_seconds >= r.seconds and r.cpu_seconds > 0 for r in found.rounds)
    cost = next(c for c in report.costs if c.init == "target-ticket")
    whole = found.setup_seconds + sum(r.wall_seconds for r in found.rounds)
    assert cost.search_seconds == pytest.approx(whole, abs=1e-2)
    assert cost.search_seconds > sum(r.seconds for r in found.rounds)  # more than its training alone
    assert cost.search_cpu_seconds == pytest.approx(found.setup_cpu_seconds + sum(r.cpu_seconds for r in found.rounds),
                                                    abs=1e-2)


def test_a_report_says_how_many_models_were_still_improving_at_their_last_evaluation(grid):
    report = grid[1]
    share = sum(r.best_iteration >= r.iterations for r in report.results) / len(report.results)
    assert report.last_evaluation_best == pytest.approx(share)
    from ticketpack.transfer.report import markdown_table

    assert f"{100 * share:.0f}% of the {len(report.results)} models were best at their last evaluation" in \
        markdown_table(report)


def test_a_workers_first_job_is_reported_as_start_up_not_as_its_strategys_cost(grid):
    from ticketpack.transfer.report import _costs

    results = [r for r in grid[1].results if r.init == "ticket" and r.level == 1]
    assert len(results) == 2
    warm = results[1].model_copy(update={"seconds": 2.0, "first_in_worker": False})
    more = results[0].model_copy(update={"seconds": 2.2, "first_in_worker": False, "seed": 5})
    cold = results[0].model_copy(update={"seconds": 7.1, "first_in_worker": True})
    (cost,) = _costs(grid[0], [cold, warm, more])
    assert cost.jobs == 3 and cost.seconds_mean == pytest.approx(2.1)  # the first job left out
    assert cost.startup_seconds == pytest.approx(5.0)  # 7.1 against the others' 2.1
