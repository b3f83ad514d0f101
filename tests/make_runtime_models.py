"""Export the models that the runtime-only CI venvs test on (run with the full install, see .ci/run):

    python tests/make_runtime_models.py DIR
    # → DIR/digits.onnx, DIR/text.onnx (compact), DIR/formats/<model>-<format>-<quantize>.onnx for every stored
    #   format of both, DIR/formats/self-contained-<model>-<format>-<quantize>.onnx (export --self-contained, three
    #   formats of each model whose preprocessing has an ONNX form), and DIR/formats/expected.npz: a test batch per
    #   model (featurized, and raw for the self-contained files) and each file's logits (self-contained: labels and
    #   probabilities) on it, computed by the onnxruntime installed here (the newest), for older ones to be held to.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).parent))

from conftest import text_config, tiny_config  # noqa: E402

from ticketpack.export.exporter import (  # noqa: E402
    ExportConfig,
    export_model,
    export_prepared,
    prepare,
)
from ticketpack.search import search  # noqa: E402

FORMATS = [(f, q) for f in ("dense", "compact", "sparse") for q in ("none", "int8", "int8-static")]
SELF_CONTAINED = [("compact", "none"), ("sparse", "int8"), ("dense", "int8-static")]
BATCH = 64


def _logits(path: Path, x: np.ndarray) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"input": x})[0]


def _self_contained(prepared, name: str, formats: Path, expected: dict[str, np.ndarray]) -> None:
    """Self-contained exports of a model, their raw test batch and what the newest onnxruntime answers on it; when
    the model's preprocessing has no ONNX form, the reason (the tests skip with it)."""
    from ticketpack.core.errors import TicketpackError

    raw = prepared.selection.data.test.raw[:BATCH]
    stored = np.asarray(raw)
    expected[f"self-contained-{name}.raw"] = stored.astype(str) if stored.dtype == object else stored  # texts: str
    try:
        prepared.selection.ticket.manifest.dataset.preprocessing.raw_graph()
    except TicketpackError as exc:
        expected[f"self-contained-{name}.skipped"] = np.array(str(exc))
        return
    for fmt, quantize in SELF_CONTAINED:
        path = formats / f"self-contained-{name}-{fmt}-{quantize}.onnx"
        export_prepared(prepared, path, ExportConfig(format=fmt, quantize=quantize, threads=1, self_contained=True))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        feed = prepared.selection.ticket.manifest.dataset.preprocessing.raw_array(raw)
        probabilities, labels = session.run(["probabilities", "label"], {"raw": feed})
        expected[f"{path.stem}.probabilities"] = probabilities
        expected[f"{path.stem}.label"] = labels.astype(str)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    formats = out / "formats"
    formats.mkdir(exist_ok=True)
    # 30% of the digits weights and 25% of the text ones remain: sparse stores both models' weights bit-mask encoded
    search(tiny_config(prune={"rounds": 1, "rate": 0.7}), out / "digits-ticket", force=True)
    search(text_config(), out / "text-ticket", force=True)
    expected: dict[str, np.ndarray] = {"onnxruntime": np.array(ort.__version__)}
    for name, level in (("digits", 1), ("text", 2)):
        ticket = out / f"{name}-ticket"
        export_model(ticket, out / f"{name}.onnx", level=level, format="compact", threads=1)
        prepared = prepare(ticket, level=level, threads=1)
        x = prepared.x_test[:BATCH]
        expected[f"{name}.x"] = x
        for fmt, quantize in FORMATS:
            path = formats / f"{name}-{fmt}-{quantize}.onnx"
            export_prepared(prepared, path, ExportConfig(format=fmt, quantize=quantize, threads=1))
            expected[path.stem] = _logits(path, x)
        _self_contained(prepared, name, formats, expected)
    np.savez(formats / "expected.npz", **expected)
    print(out / "digits.onnx", out / "text.onnx", f"{len(FORMATS) * 2} files in {formats}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
