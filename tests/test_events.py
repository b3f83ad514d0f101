"""One progress callback for every stage: ``on_event`` with an ``Event``; the old names warn for one release."""

from __future__ import annotations

import inspect
import warnings

import pytest

from ticketpack.core.errors import TicketpackError
from ticketpack.core.events import Event, resolve_on_event


def _stages():
    from ticketpack.demo import run_demo
    from ticketpack.evaluate import evaluate_model
    from ticketpack.export.exporter import export_model, export_prepared
    from ticketpack.search.imp import search
    from ticketpack.transfer.run import run_transfer

    return [search, run_transfer, export_model, export_prepared, evaluate_model, run_demo]


@pytest.mark.parametrize("fn", _stages(), ids=lambda f: f.__name__)
def test_every_stage_takes_on_event(fn):
    params = inspect.signature(fn).parameters
    assert "on_event" in params
    assert "on_progress" not in params or params["on_progress"].kind is inspect.Parameter.KEYWORD_ONLY
    assert "on_stage" not in params or params["on_stage"].kind is inspect.Parameter.KEYWORD_ONLY


def test_stage_events_share_one_base_and_name_their_stage():
    from ticketpack.search.imp import SearchEvent
    from ticketpack.transfer.run import TransferEvent

    search = SearchEvent("step", 1, 3, 4, 40, 0.5, epoch=1, epochs=4)
    transfer = TransferEvent("planned", 0, 6)
    assert isinstance(search, Event) and isinstance(transfer, Event)
    assert (search.stage, search.kind, search.round, search.step) == ("search", "step", 1, 4)
    assert (transfer.stage, transfer.kind, transfer.done, transfer.total) == ("transfer", "planned", 0, 6)
    assert str(Event("status", stage="export", message="building")) == "building"


def test_the_old_name_warns_and_gets_the_message():
    got = []
    with pytest.warns(DeprecationWarning, match="`on_stage` is deprecated.*on_event"):
        callback = resolve_on_event(None, "export", on_stage=got.append)
    callback(Event("status", stage="export", message="checking"))
    assert got == ["checking"]
    with pytest.raises(TypeError, match="not both"), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        resolve_on_event(got.append, "export", on_stage=got.append)


def test_no_warning_for_on_event_and_a_no_op_without_one():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolve_on_event(None, "evaluate", on_progress=None)(Event("status", stage="evaluate", message="x"))


def test_evaluate_on_progress_still_works_with_a_warning(tmp_path):
    from ticketpack.evaluate import evaluate_model

    said, events = [], []
    missing = tmp_path / "missing.onnx"
    with pytest.warns(DeprecationWarning, match="on_progress"), pytest.raises(TicketpackError, match="not found"):
        evaluate_model(missing, on_progress=said.append)
    assert said == [f"opening {missing}"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        with pytest.raises(TicketpackError, match="not found"):
            evaluate_model(missing, on_event=events.append)
    assert [(e.stage, e.kind, e.message) for e in events] == [("evaluate", "status", f"opening {missing}")]


def test_export_on_stage_still_works_with_a_warning(tmp_path):
    from ticketpack.export.exporter import export_model

    said = []
    with pytest.warns(DeprecationWarning, match="on_stage"), pytest.raises(TicketpackError):
        export_model(tmp_path / "no-ticket", tmp_path / "model.onnx", on_stage=said.append)
    assert said == ["loading"]
