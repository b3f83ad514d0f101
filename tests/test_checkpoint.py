"""Starting from the user's trained weights (--init-weights), the three ways of retraining (--retrain), learning-rate
schedules and the device flags; every run on the CPU."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ticketpack.cli.app import app
from ticketpack.core.errors import TicketpackError

runner = CliRunner()
TINY = {"iterations": 20, "batch_size": 64}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A lenet-300-100 trained on digits by plain torch (the user's own training), saved both ways."""
    from ticketpack.data import SplitConfig, get
    from ticketpack.models import build
    from ticketpack.runtime.spec import ModelSpec

    root = tmp_path_factory.mktemp("ckpt")
    data = get("digits").load("clean", 0, SplitConfig())
    torch.manual_seed(0)
    model = build(ModelSpec(name="lenet-300-100"), data.preprocessing, 10)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    x, y = torch.from_numpy(data.train.x), torch.from_numpy(data.train.y)
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    from safetensors.torch import save_file

    save_file(model.state_dict(), root / "model.safetensors")
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, root / "model.pt")  # Lightning-style nesting
    return {"safetensors": root / "model.safetensors", "pt": root / "model.pt", "root": root}


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_round_0_is_the_checkpoint_as_given(trained, fmt, tmp_path):
    from ticketpack.export.exporter import export_model
    from ticketpack.models.tensors import load_tensors
    from ticketpack.search import SearchConfig, search

    path = trained[fmt]
    m = search(SearchConfig(init_weights=str(path), prune={"rounds": 1}, train=TINY, threads=1), tmp_path / "t")
    r0 = m.rounds[0]
    assert r0.iterations == 0 and r0.best_iteration == 0  # evaluated, not trained
    assert r0.test_accuracy > 0.85  # the user's own model's accuracy is the reference
    assert m.init_weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    theta0 = load_tensors(tmp_path / "t" / m.init_file.path)
    from safetensors.torch import load_file

    for k, v in load_file(trained["safetensors"]).items():
        assert torch.equal(theta0[k], v)  # θ0 is the checkpoint
    exp = export_model(tmp_path / "t", tmp_path / "m.onnx", level=1, threads=1)
    assert exp.card.provenance.init_weights_sha256 == m.init_weights_sha256


@pytest.mark.parametrize("retrain", ["weight-rewind", "lr-rewind", "finetune"])
def test_each_retrain_mode_starts_where_it_says(trained, retrain, tmp_path):
    """At a learning rate too small to move anything, round 1's weights are its starting point under the mask: θ0 (the
    checkpoint) for weight-rewind; round 0's trained weights for lr-rewind and finetune."""
    from ticketpack.models.tensors import load_tensors
    from ticketpack.search import SearchConfig, search

    cfg = SearchConfig(init_weights=str(trained["safetensors"]), train_dense=True,
                       prune={"rounds": 1, "retrain": retrain, "finetune_lr": 1e-12},
                       train={"iterations": 4, "batch_size": 64, "lr": 1e-12, "optimizer": "sgd", "momentum": 0.0},
                       threads=1)
    m = search(cfg, tmp_path / "t")
    root = tmp_path / "t"
    theta0 = load_tensors(root / m.init_file.path)
    trained0 = load_tensors(root / m.rounds[0].weights_file.path)
    round1 = load_tensors(root / m.rounds[1].weights_file.path)
    mask = {k: v.bool() for k, v in load_tensors(root / m.rounds[1].mask_file.path).items()}
    start = theta0 if retrain == "weight-rewind" else trained0
    for name, keep in mask.items():
        np.testing.assert_allclose(round1[name].numpy(), (start[name] * keep).numpy(), atol=1e-6)
    assert m.config.prune.retrain == retrain


def test_lr_rewind_replays_the_schedule_from_step_k():
    from ticketpack.training.config import TrainConfig
    from ticketpack.training.schedule import lr_factor

    cosine = TrainConfig(schedule="cosine", warmup_steps=10)
    assert lr_factor(cosine, 0, 110) == pytest.approx(0.1) and lr_factor(cosine, 9, 110) == pytest.approx(1.0)
    assert lr_factor(cosine, 60, 110) == pytest.approx(0.5) and lr_factor(cosine, 110, 110) == pytest.approx(0.0)
    step = TrainConfig(schedule="step", step_every=10, gamma=0.5)
    assert [lr_factor(step, s, 30) for s in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
    assert lr_factor(TrainConfig(), 1234, 10) == 1.0


class NotWeights:  # a pickled object: loading it would run code, so it is refused
    def __reduce__(self):
        return (print, ("this would run",))


def _bad_checkpoints(root: Path, trained: dict[str, Path]) -> dict[str, Path]:
    from ticketpack.data.kinds import ImagePreprocessing
    from ticketpack.models import build
    from ticketpack.runtime.spec import ModelSpec

    conv = build(ModelSpec(name="convnet"), ImagePreprocessing(), 10)
    torch.save(conv.state_dict(), root / "other-architecture.pt")
    data = trained["safetensors"].read_bytes()
    (root / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    pt = trained["pt"].read_bytes()
    (root / "truncated.pt").write_bytes(pt[: len(pt) // 2])
    with open(root / "pickle.pt", "wb") as fh:
        pickle.dump({"weights": NotWeights()}, fh)
    torch.save([torch.zeros(3)], root / "a-list.pt")
    return {p.stem: p for p in root.glob("*.*") if p.stem not in ("model",)}


@pytest.mark.parametrize("case, message", [
    ("other-architecture", "does not fit the model: missing hidden.0.weight"),
    ("truncated", "not a readable safetensors file"),
    ("pickle", "not a plain state dict of tensors loadable with weights_only=True"),
    ("a-list", "holds list, not a state dict"),
])
def test_a_bad_checkpoint_is_one_line_exit_2_and_writes_nothing(trained, case, message, tmp_path):
    bad = _bad_checkpoints(tmp_path, trained)
    path = bad[case] if case != "truncated" else tmp_path / "truncated.safetensors"
    result = runner.invoke(app, ["search", "--init-weights", str(path), "--rounds", "1", "--out", str(tmp_path / "t")])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()) and "Traceback" not in result.output
    assert not (tmp_path / "t").exists()


def test_a_truncated_state_dict_is_refused(trained, tmp_path):
    from ticketpack.models.checkpoint import read_checkpoint

    _bad_checkpoints(tmp_path, trained)
    with pytest.raises(TicketpackError, match="not a plain state dict"):
        read_checkpoint(tmp_path / "truncated.pt")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answer on a machine without a GPU")
@pytest.mark.parametrize("command", [["search", "--out", "{tmp}/t"], ["transfer", "{ticket}", "--target", "rot30",
                                                                       "--out", "{tmp}/t"]])
def test_device_cuda_without_a_gpu_is_one_line_exit_2(command, digits_ticket, tmp_path):
    args = [a.format(tmp=tmp_path, ticket=digits_ticket) for a in command] + ["--device", "cuda"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "no CUDA GPU is visible here" in result.output, result.output
    assert not (tmp_path / "t").exists()


def test_bf16_on_a_cpu_without_it_is_refused(tmp_path):
    capability = torch.backends.cpu.get_cpu_capability()
    if any(tag in capability for tag in ("AMX", "BF16")):
        pytest.skip(f"this CPU ({capability}) has native bf16")
    result = runner.invoke(app, ["search", "--device", "cpu", "--precision", "bf16", "--out", str(tmp_path / "t")])
    assert result.exit_code == 2 and "has no native bfloat16" in result.output, result.output


def test_auto_is_the_cpu_here_and_the_manifest_says_so(tmp_path):
    from ticketpack.search import SearchConfig, search

    m = search(SearchConfig(prune={"rounds": 0}, train={"iterations": 2}, threads=1), tmp_path / "t")
    assert m.config.train.device == "auto"
    assert m.device == ("cpu" if not torch.cuda.is_available() else m.device)


def test_local_workers_take_gpus_in_turn(monkeypatch):
    """Worker i of `transfer --jobs N` makes GPU i mod count its current device (what `cuda` and `auto` mean there)."""
    from ticketpack.training.device import resolve_device
    from ticketpack.transfer import executors

    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    assert [executors.use_gpu_slot(i) for i in range(5)] == [0, 1, 0, 1, 0] == chosen
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert resolve_device("auto") == torch.device("cuda", 1) == resolve_device("cuda")
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(TicketpackError, match="only 2 CUDA GPU"):
        resolve_device("cuda:2")


def test_lr_rewind_from_a_checkpoint_with_k_steps(trained, tmp_path):
    """lr-rewind from a checkpoint with rewind_iter > 0: round 0 is not trained, so the rewind file is the checkpoint;
    each pruned round replays the schedule from step k (fewer steps than a whole run)."""
    from ticketpack.search import SearchConfig, search

    cfg = SearchConfig(init_weights=str(trained["safetensors"]), prune={"rounds": 1, "retrain": "lr-rewind",
                                                                       "rewind_iter": 5},
                       train={"iterations": 20, "batch_size": 64, "schedule": "cosine"}, threads=1)
    m = search(cfg, tmp_path / "t")
    assert m.rewind_file.sha256 == m.init_file.sha256
    assert m.rounds[1].iterations == 15


def test_weight_rewind_to_step_k_from_a_checkpoint_needs_train_dense(trained, tmp_path):
    from ticketpack.search import SearchConfig, search

    cfg = SearchConfig(init_weights=str(trained["safetensors"]), prune={"rounds": 1, "rewind_iter": 5},
                       train={"iterations": 20}, threads=1)
    with pytest.raises(TicketpackError, match="needs `train_dense`"):
        search(cfg, tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_a_ticket_from_a_checkpoint_transfers_from_the_checkpoint_under_its_mask(trained, tmp_path):
    from ticketpack.search import SearchConfig, search
    from ticketpack.transfer import TransferConfig, run_transfer

    search(SearchConfig(init_weights=str(trained["safetensors"]), prune={"rounds": 1}, train=TINY, threads=1),
           tmp_path / "t")
    report = run_transfer(TransferConfig(ticket=str(tmp_path / "t"), target="rot30", inits=["ticket"], seeds=1,
                                         levels=[1], train={"iterations": 1, "lr": 1e-12}, threads=1), tmp_path / "r")
    (result,) = report.results
    # one step at a rate too small to move anything: the checkpoint's accuracy on the source, pruned once
    assert result.source_test_accuracy > 0.8


def test_deterministic_mode_gives_the_cpu_ticket_and_restores_torch(tmp_path):
    from ticketpack.search import SearchConfig, search

    plain = search(SearchConfig(prune={"rounds": 1}, train=TINY, threads=1), tmp_path / "a")
    strict = search(SearchConfig(prune={"rounds": 1}, train={**TINY, "deterministic": True}, threads=1), tmp_path / "b")
    assert [r.mask_sha256 for r in strict.rounds] == [r.mask_sha256 for r in plain.rounds]
    assert not torch.are_deterministic_algorithms_enabled()
