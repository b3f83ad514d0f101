"""The user's own data through every stage: image folders (with and without given splits), .npz arrays (images and
tables), CSV and Parquet tables, and dataset factories (arrays, and a dataset object read item by item). Each goes
search → transfer → export → evaluate → predict → serve at a tiny size; a new input kind is added from outside."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ticketpack.cli.app import app
from ticketpack.core.errors import TicketpackError

runner = CliRunner()
RNG_SEED = 0
FAST_TRAIN = {"iterations": 6, "batch_size": 16}


def _images(n_per_class: int, classes: int, size: int, shift: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, size, size, 3): class k lights channel k % 3 in band k; ``shift`` brightens a domain."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 60, (n_per_class * classes, size, size, 3))
    y = np.repeat(np.arange(classes), n_per_class)
    for i, k in enumerate(y):
        x[i, (k * size) // classes : ((k + 1) * size) // classes, :, k % 3] += 120 + shift
    return np.clip(x, 0, 255).astype(np.uint8), y


def _save_folder(root: Path, x: np.ndarray, y: np.ndarray, names: list[str]) -> None:
    from PIL import Image

    for i, (img, k) in enumerate(zip(x, y)):
        d = root / names[k]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{i}.png")


NAMES = ["cat", "dog", "emu"]


def make_image_folder(root: Path) -> None:
    for dom, shift in (("day", 0), ("night", 40)):
        x, y = _images(12, 3, 10, shift, seed=shift)
        _save_folder(root / dom, x, y, NAMES)


def make_image_splits(root: Path) -> None:
    for dom, shift in (("day", 0), ("night", 40)):
        for s, (n, seed) in {"train": (10, 1), "val": (4, 2), "test": (4, 3)}.items():
            x, y = _images(n, 3, 10, shift, seed=seed + shift)
            _save_folder(root / dom / s, x, y, NAMES)


def make_npz_images(root: Path) -> None:
    root.mkdir(parents=True)
    for dom, shift in (("day", 0), ("night", 40)):
        x, y = _images(12, 3, 10, shift, seed=shift)
        np.savez(root / f"{dom}.npz", x=x, y=np.array(NAMES)[y])


def _table(n: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n)
    x = rng.normal(size=(3 * n, 5))
    x[:, 0] += 3 * y + shift
    x[:, 1] -= 2 * y
    return x, y


def make_csv_table(root: Path) -> None:
    root.mkdir(parents=True)
    for dom, shift in (("day", 0.0), ("night", 1.0)):
        x, y = _table(12, shift, seed=int(shift * 10))
        lines = ["f0,f1,f2,f3,f4,label"] + [",".join(f"{v:.4f}" for v in row) + f",{NAMES[k]}" for row, k in zip(x, y)]
        (root / f"{dom}.csv").write_text("\n".join(lines) + "\n")


def make_parquet_table(root: Path) -> None:
    pa = pytest.importorskip("pyarrow", reason="Parquet needs pyarrow")
    import pyarrow.parquet as pq

    root.mkdir(parents=True)
    for dom, shift in (("day", 0.0), ("night", 1.0)):
        x, y = _table(12, shift, seed=int(shift * 10))
        cols = {f"f{i}": x[:, i] for i in range(5)}
        pq.write_table(pa.table({**cols, "label": [NAMES[k] for k in y]}), root / f"{dom}.parquet")


FACTORY = '''
import numpy as np

def domains(domain):
    """Images as arrays, labels as indices with their names."""
    rng = np.random.default_rng(0 if domain == "day" else 40)
    y = np.repeat(np.arange(3), 12)
    x = rng.integers(0, 60, (36, 10, 10)).astype(np.float32)
    for i, k in enumerate(y):
        x[i, 3 * k : 3 * k + 3] += 150
    return {"x": x, "y": y, "kind": "image", "labels": ["cat", "dog", "emu"],
            "preprocessing": {"pixel_min": 0, "pixel_max": 255}}

domains.domains = ["day", "night"]


class Items:
    """A dataset object (the shape of a torch.utils.data.Dataset): read item by item, never whole."""

    def __init__(self, n, seed):
        rng = np.random.default_rng(seed)
        self.y = np.repeat(np.arange(3), n)
        self.x = rng.normal(size=(3 * n, 4)).astype(np.float32)
        self.x[:, 0] += 3 * self.y
        self.targets = self.y.tolist()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def item_splits(domain):
    base = 0 if domain == "day" else 7
    return {"train": Items(12, base), "val": Items(4, base + 1), "test": Items(4, base + 2), "kind": "tabular",
            "labels": ["cat", "dog", "emu"],
            "preprocessing": {"columns": ["a", "b", "c", "d"]}}
'''


def make_factory(root: Path) -> str:
    root.mkdir(parents=True)
    (root / "factory.py").write_text(FACTORY)
    return str(root / "factory.py")


FORMATS = {
    "image-folder": make_image_folder,
    "image-folder-splits": make_image_splits,
    "npz-images": make_npz_images,
    "csv-table": make_csv_table,
    "parquet-table": make_parquet_table,
}


def _dataset(kind: str, tmp: Path) -> str:
    if kind == "factory-arrays":
        return make_factory(tmp / "f") + ":domains"
    if kind == "factory-items":
        return make_factory(tmp / "f") + ":item_splits"
    FORMATS[kind](tmp / "data")
    return str(tmp / "data")


def _predict_input(kind: str, dataset: str, tmp: Path) -> Path:
    """A file of raw inputs as a user would hand `predict`."""
    if kind.startswith("image-folder"):
        root = Path(dataset) / "night"
        return next(p for p in sorted(root.rglob("cat")) if p.is_dir())  # a folder of images
    if kind in ("csv-table", "parquet-table"):
        return Path(dataset) / ("night.csv" if kind == "csv-table" else "night.parquet")
    x = np.random.default_rng(1).integers(0, 255, (3, 10, 10, 3)).astype(np.uint8)
    if kind == "factory-arrays":
        x = x[..., 0].astype(np.float32)
    if kind == "factory-items":
        x = np.random.default_rng(1).normal(size=(3, 4))
    np.save(tmp / "inputs.npy", x)
    return tmp / "inputs.npy"


@pytest.mark.parametrize("kind", [*FORMATS, "factory-arrays", "factory-items"])
def test_each_data_format_goes_through_every_stage(kind, tmp_path):
    from ticketpack.evaluate import evaluate_model
    from ticketpack.export.exporter import export_model
    from ticketpack.search import SearchConfig, search
    from ticketpack.transfer import TransferConfig, run_transfer

    dataset = _dataset(kind, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny splits: class-share warnings
        m = search(SearchConfig(dataset=dataset, source="day", prune={"rounds": 1}, train=FAST_TRAIN, threads=1),
                   tmp_path / "ticket")
        assert m.status == "complete" and m.dataset.label_names == NAMES
        assert m.config.model.name == "lenet-300-100"  # `auto`, resolved by the input kind
        if kind.startswith("factory"):
            assert m.dataset.factory["sha256"] and m.dataset.factory["file"].endswith("factory.py")
        run = run_transfer(TransferConfig(ticket=str(tmp_path / "ticket"), target="night", inits=["ticket", "dense"],
                                          seeds=1, levels=[1], train=FAST_TRAIN, threads=1), tmp_path / "run")
        assert run.jobs_finished == run.jobs_total == 2 and run.dense is not None and {c.init for c in run.cells} == {"ticket"}
        exp = export_model(tmp_path / "run", tmp_path / "m.onnx", level=1, init="ticket", seed=0, threads=1)
        assert exp.card.parity.max_abs_diff <= 1e-4 and exp.card.label_names == NAMES
        given = {}
        if kind.startswith("factory"):  # a factory is code: evaluate runs the one the user names, not the card's
            with pytest.raises(TicketpackError, match="names a dataset factory"):
                evaluate_model(tmp_path / "m.onnx", threads=1, batch_sizes=(1,), latency_budget_s=0.05)
            given = {"dataset": dataset}
        report = evaluate_model(tmp_path / "m.onnx", threads=1, batch_sizes=(1,), latency_budget_s=0.05, **given)
    assert report.examples > 0 and report.model.accuracy == pytest.approx(exp.card.metrics.test_accuracy)
    if kind == "image-folder":  # a folder of class folders is labelled data for `evaluate --data-file`
        on_files = evaluate_model(tmp_path / "m.onnx", data_file=Path(dataset) / "night", threads=1, batch_sizes=(1,),
                                  latency_budget_s=0.05)
        assert on_files.examples == len(list((Path(dataset) / "night").rglob("*.png")))

    result = runner.invoke(app, ["predict", str(tmp_path / "m.onnx"), "--input",
                                 str(_predict_input(kind, dataset, tmp_path)), "--json"])
    assert result.exit_code == 0, result.output
    predictions = json.loads(result.stdout)
    assert predictions["rows"] and all(row["label"] in NAMES for row in predictions["rows"])

    _served_like_predict(tmp_path / "m.onnx", predictions)


def _served_like_predict(path: Path, predictions: dict) -> None:
    """`serve` answers a request with the labels `predict` gave, from raw inputs the card preprocesses."""
    pytest.importorskip("fastapi")
    from starlette.testclient import TestClient

    import ticketpack
    from ticketpack.serve.app import create_app
    from ticketpack.serve.config import ModelSource, ServeConfig
    from ticketpack.serve.models import load_models

    clf = ticketpack.load(path)
    raw = np.asarray(clf.card.preprocessing.smoke_inputs())
    config = ServeConfig(models=[ModelSource.parse(str(path))], provider="cpu")
    with TestClient(create_app(config, load_models(config, validate=True))) as client:
        response = client.post(f"/v1/models/{path.stem}/predict", json={"inputs": raw.tolist()})
    assert response.status_code == 200, response.text
    assert [p["label"] for p in response.json()["predictions"]] == clf.predict(raw)


def test_a_label_set_that_differs_between_domains_is_named(tmp_path):
    make_image_folder(tmp_path / "data")
    x, y = _images(4, 1, 10, 0, seed=5)
    _save_folder(tmp_path / "data" / "night", x, y, ["fox"])  # a class folder in one domain only
    from ticketpack.search import SearchConfig, search

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search(SearchConfig(dataset=str(tmp_path / "data"), source="day", prune={"rounds": 1}, train=FAST_TRAIN,
                            threads=1), tmp_path / "ticket")
    result = runner.invoke(app, ["transfer", str(tmp_path / "ticket"), "--target", "night", "--out",
                                 str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "has labels ['fox'] that the ticket does not have" in " ".join(result.output.split())
    assert not (tmp_path / "run").exists()


def test_the_preprocessing_records_the_pixel_range_of_the_training_images_and_warns_far_beyond_it(tmp_path):
    from ticketpack.data import SplitConfig, get

    make_npz_images(tmp_path / "data")  # uint8: declared 0-255
    data = get(tmp_path / "data").load("day", 0, SplitConfig())
    prep, train = data.preprocessing, data.train
    raw = np.asarray(train.rows.take(np.arange(len(train.y))), dtype=np.float64)  # every training image (< 2,048)
    assert (prep.pixel_min, prep.pixel_max) == (0.0, 255.0)
    assert (prep.train_pixel_min, prep.train_pixel_max) == (raw.min(), raw.max())
    assert prep.train_pixel_max < 255  # the training range is what was seen, not the type's

    rng = np.random.default_rng(0)
    floats = tmp_path / "floats"
    floats.mkdir()
    np.savez(floats / "day.npz", x=rng.uniform(-1.0, 2.0, (30, 6, 6)), y=np.repeat(np.array(NAMES), 10))
    prep = get(floats).load("day", 0, SplitConfig()).preprocessing
    assert -1.0 <= prep.train_pixel_min < -0.9 and 1.9 < prep.train_pixel_max <= 2.0
    low, high = prep.input_range
    images = np.zeros((4, 6, 6))
    images[1, 0, 0] = high + 0.05 * (high - low)  # a little beyond: within the slack of a tenth of the range
    images[2, 3, 3] = 1e38
    images[3, 5, 5] = low - 0.2 * (high - low)
    x, beyond = prep.transform_checked(images)
    assert x.shape == (4, 1, 6, 6) and beyond.rows == (2, 3) and beyond.highest == 1e38
    assert "2 of 4 images (#2, 3)" in beyond.message("images") and "far outside the range the model was trained on" in beyond.message()
    np.testing.assert_array_equal(x, prep.transform(images))


def test_images_of_another_size_are_resized_identically_in_training_and_serving(tmp_path):
    """With a resize in the config, images of mixed sizes are accepted; the served model resizes raw images with the
    very numpy code that training used."""
    from PIL import Image

    from ticketpack.data import SplitConfig, get

    make_image_folder(tmp_path / "data")
    odd = np.random.default_rng(3).integers(0, 255, (13, 17, 3)).astype(np.uint8)
    Image.fromarray(odd).save(tmp_path / "data" / "day" / "cat" / "odd.png")
    ds = get(tmp_path / "data")
    result = runner.invoke(app, ["search", "--dataset", str(tmp_path / "data"), "--source", "day", "--out",
                                 str(tmp_path / "t")])
    assert result.exit_code == 2 and "images of different sizes" in result.output
    data = ds.load("day", 0, SplitConfig(), options={"resize": [12, 12], "height": 10, "width": 10})
    prep = data.preprocessing
    assert (prep.height, prep.width, prep.resize, prep.channels) == (10, 10, [12, 12], 3)
    served = prep.transform([odd])  # what a served model computes from the raw image
    split = next(s for s in (data.train, data.val, data.test) if any(p.endswith("odd.png") for p in s.rows.rows.paths[s.rows.idx]))
    i = int(np.flatnonzero([p.endswith("odd.png") for p in split.rows.rows.paths[split.rows.idx]])[0])
    np.testing.assert_array_equal(split.batch(np.array([i])), served)


def test_a_new_input_kind_is_one_class(tmp_path):
    """A user adds a kind (1-D signals, as audio would be) from outside the package, and it goes through search,
    export and prediction with no other change."""
    from typing import ClassVar, Literal

    import ticketpack
    from ticketpack.data import InputKind, register_kind
    from ticketpack.data.kinds import KINDS
    from ticketpack.export.exporter import export_model
    from ticketpack.search import SearchConfig, search

    class SignalPreprocessing(InputKind):
        """A 1-D signal: each row scaled by its own peak."""

        kind: Literal["signal"] = "signal"
        length: int = 16
        noun: ClassVar[str] = "signals"

        @property
        def input_shape(self):
            return (self.length,)

        def transform(self, raw):
            x = np.asarray(raw, dtype=np.float64).reshape(-1, self.length)
            peak = np.abs(x).max(axis=1, keepdims=True)
            return (x / np.where(peak > 0, peak, 1)).astype(np.float32)

        def smoke_inputs(self):
            return np.sin(np.linspace(0, 6, 2 * self.length)).reshape(2, self.length)

    if "signal" not in KINDS:
        register_kind(SignalPreprocessing)
    (tmp_path / "signals.py").write_text(
        "import numpy as np\n"
        "def waves(domain):\n"
        "    rng = np.random.default_rng(0)\n"
        "    t = np.linspace(0, 1, 16)\n"
        "    y = np.repeat([0, 1], 20)\n"
        "    x = np.stack([np.sin(2 * np.pi * (2 + 4 * k) * t + rng.uniform(0, 6)) * rng.uniform(1, 9) for k in y])\n"
        "    return {'x': x, 'y': y, 'kind': 'signal'}\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search(SearchConfig(dataset=str(tmp_path / "signals.py") + ":waves", source="any", prune={"rounds": 1},
                            train={"iterations": 30, "batch_size": 8}, threads=1), tmp_path / "ticket")
        export_model(tmp_path / "ticket", tmp_path / "s.onnx", level=1, threads=1)
    clf = ticketpack.load(tmp_path / "s.onnx")
    assert clf.card.preprocessing == SignalPreprocessing()  # the card reads back as the user's class
    t = np.linspace(0, 1, 16)
    raw = np.stack([3 * np.sin(2 * np.pi * 2 * t), 0.5 * np.sin(2 * np.pi * 6 * t)])
    probs = clf.predict_proba(raw)
    assert probs.shape == (2, 2) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    # the kind's own transform ran: scaling a signal does not change its prediction
    np.testing.assert_allclose(clf.predict_proba(raw * 7), probs, atol=1e-6)
    assert ticketpack.validate_model(tmp_path / "s.onnx", strict=True).passed
