"""One registry API for models, datasets, pruning strategies and transfer inits: ``list_*``/``create_*``, the
``ticketpack list`` command, and strategies and inits a user registers working everywhere the built-ins do."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_config
from pydantic import Field
from typer.testing import CliRunner

import ticketpack
from ticketpack.core.errors import TicketpackError
from ticketpack.pruning.strategies import STRATEGIES, Strategy
from ticketpack.search import SearchConfig, Ticket, search
from ticketpack.transfer.jobs import plan_jobs
from ticketpack.transfer.strategies import INITS, InitStrategy, Start


class Largest(Strategy):
    """The largest kept weights first, by magnitude to the power `power`: the opposite of a ticket."""

    power: float = Field(1.0, gt=0, description="Exponent of the magnitude.")

    def score(self, magnitude: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return -(magnitude**self.power)


class Untrained(InitStrategy):
    """A dense network that is never masked: a test's own baseline, registered beside the built-ins."""

    masked = False

    def start(self, ctx, level: int, seed: int) -> Start:
        return Start(ctx.fresh_state(seed), None)


@pytest.fixture
def largest(monkeypatch):
    monkeypatch.setitem(STRATEGIES._items, "largest", Largest)  # undone after the test: other tests list the built-ins


def _search_largest(tmp_path, granularity: str) -> Ticket:
    config = tiny_config(train={"epochs": 1}, prune={"rounds": 1, "rate": 0.5, "strategy": "largest",
                                                     "strategy_options": {"power": 2}, "granularity": granularity})
    search(config, tmp_path / "ticket")
    return Ticket.load(tmp_path / "ticket")


def test_a_registered_strategy_prunes_at_weight_granularity(largest, tmp_path):
    ticket = _search_largest(tmp_path, "weight")
    assert ticket.manifest.config.prune.strategy_options == {"power": 2}  # the manifest records the options
    trained, mask = ticket.trained_state(0), ticket.mask(1)
    for name, keep in mask.items():
        w = trained[name].abs()
        assert 0 < keep.float().mean() < 1, name
        assert w[~keep].min() >= w[keep].max(), name  # every pruned weight is at least as large as every kept one


def test_a_registered_strategy_prunes_whole_units_at_neuron_granularity(largest, tmp_path):
    ticket = _search_largest(tmp_path, "neuron")
    trained, mask = ticket.trained_state(0), ticket.mask(1)
    # lenet-300-100: a hidden.0 unit is a row of hidden.0 (incoming) and a column of hidden.1 (outgoing)
    score = trained["hidden.0.weight"].norm(dim=1) * trained["hidden.1.weight"].norm(dim=0)
    kept_units = mask["hidden.0.weight"].any(dim=1)
    assert not mask["hidden.0.weight"][~kept_units].any() and mask["hidden.0.weight"][kept_units].all()
    assert not mask["hidden.1.weight"][:, ~kept_units].any()  # the pruned units' outgoing weights went too
    assert 0 < kept_units.float().mean() < 1
    assert score[~kept_units].min() >= score[kept_units].max()


def test_an_unknown_strategy_option_is_an_error_that_names_it(largest):
    with pytest.raises(TicketpackError, match=r"pruning strategy 'largest': option 'powr': not an option "
                                              r"\(its options: power\)"):
        SearchConfig.model_validate({"prune": {"strategy": "largest", "strategy_options": {"powr": 2}}})
    with pytest.raises(TicketpackError, match="option 'power': Input should be greater than 0"):
        SearchConfig.model_validate({"prune": {"strategy": "largest", "strategy_options": {"power": -1}}})
    with pytest.raises(TicketpackError, match="pruning strategy 'global': option 'power': not an option"):
        SearchConfig.model_validate({"prune": {"strategy_options": {"power": 2}}})  # the default strategy has none


def test_default_config_keeps_the_models_strategy_with_no_options():
    assert SearchConfig().prune.strategy == "global" and SearchConfig().prune.strategy_options == {}


def test_a_registered_init_is_planned_by_its_properties(monkeypatch):
    monkeypatch.setitem(INITS._items, "untrained", Untrained)
    jobs = plan_jobs(["ticket", "untrained"], levels=[1, 2], seeds=[0])
    assert [j.job_id for j in jobs] == ["L01-ticket-s0", "L02-ticket-s0", "L00-untrained-s0"]


@pytest.mark.parametrize("kind,pattern,expected", [
    ("models", "*net*", ["convnet", "lenet-300-100"]),
    ("datasets", "*", ["digits"]),
    ("strategies", "*", ["global", "layerwise", "random"]),
    ("inits", "random-*", ["random-mask", "random-reinit"]),
])
def test_list_matches_a_pattern_and_every_entry_is_documented(kind, pattern, expected):
    assert getattr(ticketpack, f"list_{kind}")(pattern) == expected
    registry = ticketpack.get_registry(kind)
    for name in registry.list():
        assert len(registry.doc(name)) > 20, (kind, name)


def test_every_registry_is_reachable_by_name_and_documents_its_entries():
    for kind in ticketpack.REGISTRIES:
        registry = ticketpack.get_registry(kind)
        assert registry.list(), kind
        for name in registry.list():
            assert registry.doc(name), (kind, name)


def test_create_makes_each_kind_of_thing():
    model = ticketpack.create_model("lenet-300-100", input_shape=(1, 8, 8), num_classes=10)
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert ticketpack.create_dataset("digits").kind == "image"  # declared: no rows are read to know it
    assert ticketpack.create_strategy("global").scope == "global"
    assert ticketpack.create_strategy("random").scope == "layer"
    assert not ticketpack.create_init("dense").masked and ticketpack.create_init("target-ticket").needs_target_search


@pytest.mark.parametrize("create", ["create_model", "create_dataset", "create_strategy", "create_init"])
def test_an_unknown_name_answers_with_the_known_ones(create):
    with pytest.raises(TicketpackError, match="unknown .*'nope'; known: "):
        getattr(ticketpack, create)("nope")


def test_cli_list_strategies_shows_each_with_its_doc_and_options(largest):
    from ticketpack.cli.app import app

    result = CliRunner().invoke(app, ["list", "strategies"])
    assert result.exit_code == 0, result.output
    for name in ("global", "layerwise", "random", "largest", "power=1.0", "opposite of a ticket"):
        assert name in result.output
    rows = json.loads(CliRunner().invoke(app, ["list", "strategies", "l*", "--json"]).stdout)
    assert [r["name"] for r in rows] == ["largest", "layerwise"]
    assert rows[0]["options"] == {"power": 1.0} and rows[0]["doc"].startswith("The largest kept weights first")


def test_cli_list_of_an_unknown_kind_is_one_line_exit_2():
    from ticketpack.cli.app import app

    result = CliRunner().invoke(app, ["list", "widgets"])
    assert result.exit_code == 2
    assert "unknown kind 'widgets'; known: models, datasets, strategies, inits" in result.output
