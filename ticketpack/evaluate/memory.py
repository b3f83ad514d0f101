"""Peak resident memory of a block of code, from Linux ``/proc/self`` (None elsewhere), and of one model's
ONNX Runtime session measured in a fresh process.

``VmHWM`` (the process's peak RSS) is reset by writing ``5`` to ``/proc/self/clear_refs``; the block's peak is
then ``VmHWM`` after it minus ``VmRSS`` before it. Memory freed earlier and reused inside the block is not
counted, so this is a lower bound on what the block would need in a fresh process.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR = Path("/proc/self/clear_refs")


def _status_kb(key: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_peak() -> bool:
    try:
        _CLEAR.write_text("5")
        return True
    except OSError:
        return False


class PeakMemory:
    mb: float | None = None


@contextmanager
def peak_memory() -> Iterator[PeakMemory]:
    """``with peak_memory() as m: ...`` then ``m.mb`` is the block's peak RSS increase in MB (10^6 bytes) or None."""
    result = PeakMemory()
    before = _status_kb("VmRSS")
    ok = before is not None and _reset_peak()
    yield result
    peak = _status_kb("VmHWM") if ok else None
    if ok and peak is not None:
        result.mb = max(0, peak - before) * 1024 / 1e6


def _prime_onnxruntime() -> None:
    """Create and run a one-node session, so ONNX Runtime's one-time process set-up is not charged to a model."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    info = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1]) for n in ("x", "y")]
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "prime", info[:1], info[1:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    session.run(None, {"x": np.zeros(1, dtype=np.float32)})


def session_peak_mb(path: str, provider: str, threads: int | None, batch: int) -> float | None:
    """Peak RSS added by opening ``path`` and running one batch of ``batch`` twice, in *this* process."""
    import numpy as np

    from ticketpack.runtime.predictor import Predictor
    from ticketpack.runtime.validate import smoke_batch

    _prime_onnxruntime()
    with peak_memory() as mem:
        pred = Predictor(path, provider, threads)
        x = smoke_batch(pred.card)
        x = x[np.arange(batch) % len(x)]
        for _ in range(2):
            pred.logits_from_inputs(x)
    return mem.mb


def measure_in_subprocess(path: str, provider: str, threads: int | None, batch: int, timeout: float = 120) -> float | None:
    """:func:`session_peak_mb` in a fresh Python process, so nothing this process did before is counted or reused."""
    import json
    import subprocess
    import sys

    code = "from ticketpack.evaluate.memory import _main; _main()"
    cmd = [sys.executable, "-c", code, str(path), provider, str(threads or 0), str(batch)]
    import os

    import ticketpack

    root = str(Path(ticketpack.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, env=env)
        return json.loads(proc.stdout.strip().splitlines()[-1])["peak_mb"] if proc.returncode == 0 else None
    except (subprocess.TimeoutExpired, OSError, ValueError, IndexError, KeyError):
        return None


def _main() -> None:
    import json
    import sys

    path, provider, threads, batch = sys.argv[1:5]
    print(json.dumps({"peak_mb": session_peak_mb(path, provider, int(threads) or None, int(batch))}))
