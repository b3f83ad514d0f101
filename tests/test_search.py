"""`ticketpack search`: IMP with rewinding, the ticket artifact, resume, determinism and bad input."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import (
    FIXTURES,
    copy_with_flipped_byte,
    copy_with_schema_version,
    tiny_config,
)
from typer.testing import CliRunner

from ticketpack.cli.app import app
from ticketpack.core.errors import TicketpackError
from ticketpack.search import SearchConfig, Ticket, search
from ticketpack.search.imp import SearchEvent

runner = CliRunner()


def test_rounds_follow_the_pruning_schedule_and_record_metrics(digits_ticket):
    m = Ticket.load(digits_ticket).manifest
    assert m.status == "complete" and [r.round for r in m.rounds] == [0, 1, 2, 3]
    sizes = {name: shape[0] * shape[1] for name, shape in m.prunable.items()}
    hidden = [n for n in sizes if n != "out.weight"]
    for rec in m.rounds:
        # hidden layers together at rate 0.5 (global magnitude), the output layer at 0.25 (half rate)
        kept = sum(rec.layer_remaining[n] * sizes[n] for n in hidden) / sum(sizes[n] for n in hidden)
        assert kept == pytest.approx(0.5 ** rec.round, abs=1e-3)
        assert rec.layer_remaining["out.weight"] == pytest.approx(0.75 ** rec.round, abs=1e-2)
        assert 0 < rec.best_iteration <= rec.iterations and rec.seconds > 0
        assert 0.5 < rec.test_accuracy <= 1 and 0.5 < rec.val_accuracy <= 1


def test_survivors_are_rewound_to_the_initialization(digits_ticket, tmp_path):
    ticket = Ticket.load(digits_ticket)
    init, rewind = ticket.init_state(), ticket.rewind_state()
    assert all(torch.equal(init[k], rewind[k]) for k in init)
    trained = ticket.trained_state(2)
    mask = ticket.mask(2)
    for name, m in mask.items():
        assert (trained[name][~m] == 0).all()


def test_late_rewinding_saves_the_weights_after_k_steps(tmp_path):
    m = search(tiny_config(prune={"rounds": 1, "rewind_iter": 5}), tmp_path / "t")
    ticket = Ticket.load(tmp_path / "t")
    init, rewind = ticket.init_state(), ticket.rewind_state()
    assert m.rewind_file is not None
    assert not torch.equal(init["hidden.0.weight"], rewind["hidden.0.weight"])


def test_search_leaves_torch_threads_and_rng_as_it_found_them(tmp_path):
    before = torch.get_num_threads()
    torch.manual_seed(1234)
    rng = torch.random.get_rng_state()
    search(tiny_config(train={"epochs": 1}, prune={"rounds": 1}, threads=before + 1), tmp_path / "t")
    assert torch.get_num_threads() == before  # the search ran with before + 1 threads and seeded torch itself
    assert torch.equal(torch.random.get_rng_state(), rng)


def test_same_seed_gives_the_same_mask_hash_and_another_seed_does_not(tmp_path):
    a = search(tiny_config(), tmp_path / "a")
    b = search(tiny_config(), tmp_path / "b")
    c = search(tiny_config(seed=1), tmp_path / "c")
    assert [r.mask_sha256 for r in a.rounds] == [r.mask_sha256 for r in b.rounds]
    assert a.rounds[-1].mask_sha256 != c.rounds[-1].mask_sha256


def test_target_sparsity_sets_the_number_of_rounds(tmp_path):
    m = search(tiny_config(train={"epochs": 1}, prune={"rate": 0.5, "target_sparsity": 0.8}), tmp_path / "t")
    assert len(m.rounds) == 4  # 0.5^3 = 12.5% remaining, the first round at >= 80% sparsity
    assert 1 - m.rounds[-1].weights_remaining >= 0.8 - 0.01


def test_resumed_search_equals_an_uninterrupted_one(tmp_path):
    cfg = tiny_config(prune={"rounds": 3})
    full = search(cfg, tmp_path / "full")

    class Crash(Exception):
        pass

    def crash_after_round_1(ev: SearchEvent) -> None:
        if ev.kind == "round_end" and ev.round == 1:
            raise Crash

    with pytest.raises(Crash):
        search(cfg, tmp_path / "part", on_event=crash_after_round_1)
    with pytest.raises(TicketpackError, match="unfinished"):
        Ticket.load(tmp_path / "part")
    resumed = search(cfg, tmp_path / "part", resume=True)
    assert [r.mask_sha256 for r in resumed.rounds] == [r.mask_sha256 for r in full.rounds]
    assert [r.test_accuracy for r in resumed.rounds] == [r.test_accuracy for r in full.rounds]
    a, b = Ticket.load(tmp_path / "full"), Ticket.load(tmp_path / "part")
    assert all(torch.equal(a.trained_state(3)[k], b.trained_state(3)[k]) for k in a.trained_state(3))


def test_resume_with_other_options_is_refused(tmp_path):
    search(tiny_config(prune={"rounds": 1}), tmp_path / "t")
    with pytest.raises(TicketpackError, match="different configuration"):
        search(tiny_config(prune={"rounds": 2}), tmp_path / "t", resume=True)


def test_changed_tensor_file_is_refused(digits_ticket, tmp_path):
    copy = copy_with_flipped_byte(digits_ticket, tmp_path / "copy", "round_02/mask.safetensors")
    with pytest.raises(TicketpackError, match="round_02/mask.safetensors fails its sha256"):
        Ticket.load(copy)


def test_truncated_tensor_file_is_refused(digits_ticket, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(digits_ticket, copy)
    path = copy / "init.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(TicketpackError, match="init.safetensors"):
        Ticket.load(copy)


def test_manifest_from_another_schema_version_is_refused(digits_ticket, tmp_path):
    copy = copy_with_schema_version(digits_ticket, tmp_path / "copy", "manifest.json", 99)
    with pytest.raises(TicketpackError, match="schema version 99"):
        Ticket.load(copy)


def test_manifest_validates_against_the_committed_json_schema(digits_ticket):
    import jsonschema
    from test_schemas import SCHEMAS

    schema = json.loads((SCHEMAS / "ticket-manifest.schema.json").read_text())
    jsonschema.validate(json.loads((digits_ticket / "manifest.json").read_text()), schema)


def test_levels_resolve_by_round_or_percentage(digits_ticket):
    ticket = Ticket.load(digits_ticket)
    assert ticket.resolve_level("2") == 2
    assert ticket.resolve_level("12%") == 3  # 0.5^3 = 12.5% is nearest
    with pytest.raises(TicketpackError, match="rounds: 0, 1, 2, 3"):
        ticket.resolve_level("9")


def test_text_ticket_prunes_embedding_rows(text_ticket):
    m = Ticket.load(text_ticket).manifest
    assert "embed.weight" in m.prunable
    assert m.dataset.label_names == ["neg", "pos"] and m.dataset.preprocessing.kind == "text"
    assert m.rounds[-1].layer_remaining["embed.weight"] < 0.5


# --- the command line -------------------------------------------------------------------------------------


def test_cli_search_prints_the_table_and_writes_a_ticket(tmp_path):
    out = tmp_path / "t"
    result = runner.invoke(app, ["search", "--out", str(out), "--rounds", "1", "--epochs", "2", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "weights remaining" in result.output and "80.2%" in result.output
    assert Ticket.load(out).manifest.config.prune.rounds == 1


def test_cli_json_prints_only_the_manifest(tmp_path):
    result = runner.invoke(
        app, ["search", "--out", str(tmp_path / "t"), "--rounds", "1", "--epochs", "1", "--json"]
    )
    assert result.exit_code == 0
    assert json.loads(result.stdout)["kind"] == "ticket"


def test_cli_config_file_sets_options_and_flags_win(tmp_path):
    cfg = tmp_path / "search.toml"
    cfg.write_text('source = "rot30"\nseed = 4\n[train]\nepochs = 1\n[prune]\nrounds = 2\n')
    result = runner.invoke(app, ["search", "--out", str(tmp_path / "t"), "--config", str(cfg), "--rounds", "1"])
    assert result.exit_code == 0, result.output
    m = Ticket.load(tmp_path / "t").manifest
    assert (m.config.source, m.config.seed, m.config.train.epochs, m.config.prune.rounds) == ("rot30", 4, 1, 1)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--model", "resnet"], "unknown model 'resnet'; known: bow, convnet, fasttext, lenet-300-100, textcnn"),
        (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        (["--source", "upside-down"], "unknown digits domain"),
        (["--strategy", "lucky"], "unknown pruning strategy 'lucky'; known: global, layerwise, random"),
        (["--model", "bow"], "takes token ids with a vocabulary (text) but the dataset holds image 1x8x8 float32"),
        (["--prune-rate", "1.5"], "prune.rate"),
        (["--config", "missing.toml"], "cannot read config"),
        (["--dataset", str(FIXTURES / "reviews"), "--source", "garden"], "unknown domain 'garden'"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "t"
    result = runner.invoke(app, ["search", "--out", str(out), "--epochs", "1", *args])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split()), result.output
    assert not out.exists()


def test_existing_out_needs_resume_or_force(tmp_path):
    out = tmp_path / "t"
    assert runner.invoke(app, ["search", "--out", str(out), "--rounds", "0", "--epochs", "1"]).exit_code == 0
    again = runner.invoke(app, ["search", "--out", str(out), "--rounds", "0", "--epochs", "1"])
    assert again.exit_code == 2 and "--resume" in again.output
    forced = runner.invoke(app, ["search", "--out", str(out), "--rounds", "0", "--epochs", "1", "--force"])
    assert forced.exit_code == 0


def test_force_refuses_to_delete_a_directory_that_is_not_a_ticket(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    result = runner.invoke(app, ["search", "--out", str(tmp_path), "--rounds", "0", "--force"])
    assert result.exit_code == 2 and (tmp_path / "precious.txt").exists()


def test_search_config_rejects_unknown_keys():
    with pytest.raises(Exception, match="extra"):
        SearchConfig.model_validate({"trian": {"epochs": 1}})
