"""Every stored format runs in onnxruntime-node (Node.js) with the results Python gets (issue 25, "Proven outside
Python"): 200 inputs per file go through tests/node/run_model.mjs (one node process per file, the whole batch at
once) and through Python's onnxruntime, and every output must agree.

- Files whose graph takes the model's input tensor (float32 images (N, 1, 8, 8), int64 token ids): fed the tensor
  ``ticketpack.load(path).prepare(raw)`` makes; node's labels (argmax of its logits, by the card's label names) must
  equal ``ticketpack.load(path).predict(raw)`` and its softmax ``predict_proba(raw)``.
- Self-contained files (``card.export.self_contained``: the graph takes ``raw`` strings or uint8 images and answers
  logits, probabilities and label), exported here from the same tickets for every stored format: fed raw strings /
  raw uint8 images; node's labels and probabilities must equal ``ticketpack.load(path).predict/predict_proba(raw)``,
  and its logits the Python featurizer's (``prepare`` + the model) — the in-graph featurization proven in Node.

Tolerance: labels and every string or integer output exactly; float outputs within ATOL = 1e-5 absolute. Both sides
run the same file on ONNX Runtime's CPU kernels, one thread, full graph optimization, so they agree bit for bit when
the versions match; the node package (1.30) may be older than Python's onnxruntime, and a kernel change between
versions can reorder a float32 sum (a few ulps: ~1e-6 at logits of magnitude 10), which 1e-5 allows and nothing that
changes a prediction fits in. A file node cannot load fails the test with onnxruntime-node's own error.

Where it runs: needs `node` on PATH and onnxruntime-node under $TICKETPACK_NODE_MODULES/node_modules (default:
examples/node/node_modules, `cd examples/node && npm ci`), else it skips saying which is missing; and the full install
(torch: the test split and the self-contained exports). The models: tests/make_runtime_models.py's, from
$TICKETPACK_RUNTIME_MODELS when set (CI, see .ci/run), else exported here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT / "tests" / "node" / "run_model.mjs"
MODELS_ENV = "TICKETPACK_RUNTIME_MODELS"
NODE_MODULES_ENV = "TICKETPACK_NODE_MODULES"
FORMATS = [f"{m}-{f}-{q}" for m in ("digits", "text") for f in ("dense", "compact", "sparse")
           for q in ("none", "int8", "int8-static")]
LEVELS = {"digits": 1, "text": 2}  # the levels tests/make_runtime_models.py exports
N = 200
ATOL = 1e-5
REVIEWS = ROOT / "tests" / "fixtures" / "reviews"
# Texts a user may send beyond the fixture's: case, accents and other scripts (in-graph lower-casing), punctuation,
# digits, emoji, whitespace runs, and a text longer than max_tokens.
ODD_TEXTS = [
    "GREAT BOOK!!! Loved every PAGE.", "ÉNORME déception : livre nul, REMBOURSÉ.", "Straße, GROSSE Freude am Buch",
    "Ünïcödé wörds ànd ÀCCENTS everywhere", "ΣΟΦΟΣ συγγραφέας, ΚΑΛΟ βιβλίο", "Книга ОТЛИЧНАЯ, автор молодец",
    "İstanbul'da okudum, harika", "读了这本书 很好 great", "👍 great battery 👍 would buy again 🔋",
    "can't-stop reading... 10/10, 5 stars", "  tabs\tand\nnew lines   between words  ", "a",
    "refund " * 60, "x1 y2 z3 4-5-6 ### $$$ %%% &&&", "The The THE the tHe", "book-author-plot_chapter.story",
]


def _node_modules() -> Path:
    return Path(os.environ.get(NODE_MODULES_ENV) or ROOT / "examples" / "node")


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if found is None:
        pytest.skip("`node` is not on PATH: install Node.js 18+ to run the exported files in onnxruntime-node")
    where = _node_modules()
    if not (where / "node_modules" / "onnxruntime-node" / "package.json").is_file():
        pytest.skip(f"onnxruntime-node is not installed in {where}/node_modules: run `npm ci` in examples/node, or "
                    f"set {NODE_MODULES_ENV} to a directory whose node_modules has it")
    if importlib.util.find_spec("torch") is None:
        pytest.skip("needs the full install (torch): the test split is read from the tickets and the self-contained "
                    "files are exported from them")
    return found


@pytest.fixture(scope="module")
def models(node, tmp_path_factory) -> Path:
    """The directory tests/make_runtime_models.py writes: <model>-ticket/ and formats/<stem>.onnx."""
    where = os.environ.get(MODELS_ENV)
    if where:
        return Path(where)
    sys.path.insert(0, str(Path(__file__).parent))
    from make_runtime_models import main

    out = tmp_path_factory.mktemp("node-runtime-models")
    main(out)
    return out


@pytest.fixture(scope="module")
def raw_inputs(models) -> dict[str, object]:
    """N raw inputs per model: digits' test split (float pixels 0-16, (N, 1, 8, 8)); the text ticket's test split,
    then the rest of the review fixture, then ODD_TEXTS, then seeded word salad from the fixture's words."""
    from ticketpack.search import Ticket

    out: dict[str, object] = {}
    for name in LEVELS:
        ticket = Ticket.load(models / f"{name}-ticket")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SplitWarning: the fixture's small splits
            raw = ticket.load_data(ticket.manifest.dataset.source_domain).test.raw
        out[name] = raw[:N] if name == "digits" else _texts(list(raw))
    assert len(out["digits"]) == N, f"digits' test split has {len(out['digits'])} rows, fewer than {N}"
    return out


def _texts(test_split: list[str]) -> list[str]:
    fixture = [json.loads(line)["text"] for f in sorted(REVIEWS.glob("*.jsonl")) for line in f.read_text().splitlines()]
    texts = list(dict.fromkeys(test_split + fixture + ODD_TEXTS))
    words = sorted({w for t in fixture for w in t.split()})
    rng = np.random.default_rng(25)
    while len(texts) < N:
        texts.append(" ".join(rng.choice(words, size=int(rng.integers(1, 40)))))
    return texts[:N]


@pytest.fixture(scope="module")
def self_contained(models, tmp_path_factory) -> dict[str, Path | str]:
    """Every stored format of both tickets exported self-contained: stem → path, or why it cannot be."""
    from ticketpack.core.errors import TicketpackError
    from ticketpack.export.exporter import ExportConfig, export_prepared, prepare

    if "self_contained" not in ExportConfig.model_fields:
        return {stem: "this ticketpack has no self-contained export" for stem in FORMATS}
    out, files = tmp_path_factory.mktemp("node-self-contained"), {}
    for name, level in LEVELS.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SplitWarning: the fixture's small splits
            prepared = prepare(models / f"{name}-ticket", level=level, threads=1)
        try:
            prepared.selection.ticket.manifest.dataset.preprocessing.raw_graph()
        except TicketpackError as exc:  # e.g. a crc32 text ticket: no ONNX form, so no self-contained file
            files.update({s: f"the {name} ticket's preprocessing has no ONNX form: {exc}" for s in FORMATS
                          if s.startswith(name)})
            continue
        for stem in (s for s in FORMATS if s.startswith(name)):
            _, fmt, quantize = stem.split("-", 2)
            files[stem] = out / f"{stem}-raw.onnx"
            export_prepared(prepared, files[stem], ExportConfig(format=fmt, quantize=quantize, threads=1,
                                                                self_contained=True))
    return files


def _tensor(x: np.ndarray) -> dict:
    if x.dtype == object or x.dtype.kind == "U":
        return {"type": "string", "dims": list(x.shape), "data": [str(v) for v in x.ravel()]}
    kinds = {"float32", "float64", "int64", "int32", "int8", "uint8", "bool"}
    assert x.dtype.name in kinds, f"no node tensor type for {x.dtype}"
    return {"type": x.dtype.name, "dims": list(x.shape), "data": x.ravel().tolist()}


def _array(t: dict) -> np.ndarray:
    if t["type"] == "string":
        return np.array(t["data"], dtype=object).reshape(t["dims"])
    if t["type"].startswith("float"):  # non-finite values come as "NaN", "Infinity", "-Infinity"
        return np.array([float(v) for v in t["data"]], dtype=t["type"]).reshape(t["dims"])
    return np.array([int(v) for v in t["data"]], dtype=t["type"] if t["type"] != "bool" else bool).reshape(t["dims"])


def run_in_node(node: str, path: Path, feeds: dict[str, np.ndarray], tmp_path: Path) -> tuple[dict, dict]:
    """All outputs of ``path`` on ``feeds`` from onnxruntime-node (one process, the whole batch), and its report."""
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"model": str(path), "inputs": {k: _tensor(v) for k, v in feeds.items()}}))
    env = {**os.environ, NODE_MODULES_ENV: str(_node_modules())}
    done = subprocess.run([node, str(HARNESS), str(request)], capture_output=True, text=True, env=env, timeout=300,
                          check=False)
    try:
        answer = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        pytest.fail(f"{HARNESS.name} exited {done.returncode} without an answer: {done.stderr.strip()[-2000:]}")
    if "error" in answer:
        pytest.fail(f"onnxruntime-node could not {answer['stage']} {path.name}: {answer['error']}")
    return {k: _array(v) for k, v in answer["outputs"].items()}, answer


def run_in_python(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def _max_diff(a: np.ndarray, b: np.ndarray, what: str) -> float:
    assert a.shape == b.shape, f"{what}: shapes {a.shape} vs {b.shape}"
    if a.dtype.kind != "f":
        assert a.dtype.kind == b.dtype.kind and a.tolist() == b.tolist(), f"{what}: differs"
        return 0.0
    diff = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))
    assert diff <= ATOL, f"{what}: largest difference {diff:.3g} > {ATOL}"
    return diff


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits.astype(np.float64) - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def check_in_node(node: str, path: Path, raw, tmp_path: Path) -> dict[str, float]:
    """Run ``path`` on ``raw`` in node and in Python; assert every agreement the module docstring lists and return
    the largest float difference of each comparison."""
    import ticketpack

    clf = ticketpack.load(path, threads=1)
    is_raw = bool(getattr(clf.card.export, "self_contained", None))
    (graph_input,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # InputRangeWarning: odd inputs are the point
        x = clf.raw_checked(raw)[0] if is_raw else clf.prepare(raw)
        labels, probabilities = clf.predict(raw), clf.predict_proba(raw)
        featurized = clf.logits_from_inputs(clf.prepare(raw))
    assert len(x) == N and graph_input.name == ("raw" if is_raw else clf.input_name)
    in_node, answer = run_in_node(node, path, {graph_input.name: x}, tmp_path)
    in_python = run_in_python(path, {graph_input.name: x})
    assert sorted(in_node) == sorted(in_python)
    diffs = {f"node vs python {k}": _max_diff(in_node[k], v, k) for k, v in in_python.items()}
    logits = in_node[clf.output_name]
    assert (logits.argmax(axis=1) == in_python[clf.output_name].argmax(axis=1)).all()
    assert [clf.labels[i] for i in logits.argmax(axis=1)] == labels, "node's argmax labels vs ticketpack.load().predict"
    if "label" in in_node:
        assert [str(v) for v in in_node["label"]] == labels, "node's label output vs ticketpack.load().predict"
    node_probabilities = in_node.get("probabilities", _softmax(logits))
    diffs["node vs predict_proba"] = _max_diff(node_probabilities, probabilities, "probabilities vs predict_proba")
    diffs["node vs python featurizer logits"] = _max_diff(logits, featurized, "logits vs prepare() + model")
    assert (logits.argmax(axis=1) == featurized.argmax(axis=1)).all()
    print(f"\n{path.name}: {N} inputs ({graph_input.type}) in onnxruntime-node {answer['versions'].get('node')} "
          f"(load {answer['seconds']['load']:.3f}s, run {answer['seconds']['run']:.3f}s) vs onnxruntime "
          f"{ort.__version__}; largest differences: " + ", ".join(f"{k} {v:.3g}" for k, v in diffs.items()))
    return diffs


@pytest.mark.parametrize("stem", FORMATS)
def test_every_stored_format_gives_pythons_results_in_node(node, models, raw_inputs, stem, tmp_path):
    check_in_node(node, models / "formats" / f"{stem}.onnx", raw_inputs[stem.split("-")[0]], tmp_path)


@pytest.mark.parametrize("stem", FORMATS)
def test_every_self_contained_format_takes_raw_inputs_in_node(node, models, raw_inputs, self_contained, stem,
                                                              tmp_path):
    path = self_contained[stem]
    if isinstance(path, str):
        pytest.skip(path)
    check_in_node(node, path, raw_inputs[stem.split("-")[0]], tmp_path)


def test_the_node_example_prints_pythons_labels(node, raw_inputs, self_contained, tmp_path):
    """examples/node/predict.mjs (the README's Node example) on raw texts and raw images: the labels Python predicts."""
    import ticketpack

    example = tmp_path / "example"
    example.mkdir()
    shutil.copy(ROOT / "examples" / "node" / "predict.mjs", example / "predict.mjs")
    (example / "node_modules").symlink_to(_node_modules().resolve() / "node_modules")
    ran = []
    for name in LEVELS:
        path = self_contained[f"{name}-compact-none"]
        if isinstance(path, str):
            continue
        raw = raw_inputs[name][:8]
        if name == "text":  # texts on the command line, images (uint8 [H][W][C]) in a JSON file
            given = list(raw)
        else:
            (tmp_path / "inputs.json").write_text(json.dumps(np.moveaxis(raw, 1, -1).round().astype(np.uint8).tolist()))
            given = ["--json", str(tmp_path / "inputs.json")]
        done = subprocess.run([node, str(example / "predict.mjs"), str(path), *given], capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        printed = [line.split("\t")[0] for line in done.stdout.splitlines()]
        assert printed == ticketpack.load(path).predict(raw), name
        ran.append(name)
    if not ran:
        pytest.skip("no self-contained file to run the example on: " + self_contained["digits-compact-none"])
