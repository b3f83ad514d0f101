"""ONNX Runtime sessions with an explicit provider choice and thread count, and the oldest ONNX Runtime an exported
graph runs on (torch-free)."""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from pathlib import Path
from typing import Literal

import onnxruntime as ort

from ticketpack.core.errors import FieldError, TicketpackError

ProviderChoice = Literal["auto", "cpu", "cuda"]
_NAMES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}

# The oldest onnxruntime that CI loads every stored format on and checks against the newest one's logits (.ci/run),
# and pyproject's floor. That release implements ONNX opsets up to 21 and IR versions up to 10.
TESTED_FLOOR = "1.18.0"
FLOOR_OPSET, FLOOR_IR = 21, 10


# com.microsoft contrib ops of a self-contained text graph (ticketpack/data/kinds/text_graph.py) that CI runs on the
# tested floor (tests/test_runtime_only.py on .ci/run's floor venv): they do not raise a file's minimum onnxruntime
FLOOR_CONTRIB_OPS = frozenset({"MurmurHash3", "Tokenizer"})


def node_domains(nodes) -> set[str]:
    """The domains of a graph's nodes, less the contrib ops known to run on the tested floor."""
    return {n.domain for n in nodes if not (n.domain == "com.microsoft" and n.op_type in FLOOR_CONTRIB_OPS)}


def release(version: str) -> tuple[int, ...]:
    """``"1.20.1"`` → (1, 20, 1); a local or pre-release tail (``1.21.0.dev2024…``, ``1.19.0+cu118``) is ignored."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3])


def required_onnxruntime(ir_version: int, opset: int, node_domains: set[str]) -> str:
    """The oldest onnxruntime known to run a graph: the tested floor while the graph stays within what that release
    implements (IR version, standard ONNX opset, only standard-domain nodes), else the release running now, the
    one the export's checks ran on."""
    if node_domains <= {"", "ai.onnx"} and opset <= FLOOR_OPSET and ir_version <= FLOOR_IR:
        return TESTED_FLOOR
    return ".".join(map(str, release(ort.__version__)))


def resolve_provider(choice: str) -> str:
    """``auto`` → CUDA when this ONNX Runtime build offers it, else CPU; ``cuda`` without CUDA is an error."""
    available = ort.get_available_providers()
    if choice == "auto":
        return "cuda" if _NAMES["cuda"] in available else "cpu"
    if choice not in _NAMES:
        raise TicketpackError(f"unknown provider {choice!r}; choose auto, cpu or cuda")
    if _NAMES[choice] not in available:
        raise TicketpackError(
            f"provider {choice} is not available in this onnxruntime build (it offers {', '.join(available)}); "
            "for CUDA install onnxruntime-gpu (`pip uninstall -y onnxruntime && pip install onnxruntime-gpu`) "
            "and a matching CUDA/cuDNN"
        )
    return choice


def make_session(model: Path | str | bytes, provider: str = "auto", threads: int | None = None,
                 spin: bool = True) -> tuple[ort.InferenceSession, str]:
    """An InferenceSession on a file (or a serialized model's bytes); returns it and the provider actually used
    ("cpu" or "cuda"). ``threads``: intra-op threads (inter-op 1); None leaves ONNX Runtime's default. ``spin``
    False: idle pool threads sleep instead of spinning (for timing two sessions against each other)."""
    if not isinstance(model, bytes):
        model = Path(model)
        if not model.is_file():
            raise TicketpackError(f"model file not found: {model}")
    what = "the model" if isinstance(model, bytes) else str(model)
    chosen = resolve_provider(provider)
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = [_NAMES[chosen]] + ([_NAMES["cpu"]] if chosen != "cpu" else [])
    printed = io.StringIO()
    try:
        # onnxruntime-gpu prints an "EP Error ... Falling back" banner on stdout when CUDA fails to start (seen with
        # 1.31 and no GPU visible): kept off stdout, which `--json` promises to hold JSON alone
        with contextlib.redirect_stdout(printed):
            session = ort.InferenceSession(model if isinstance(model, bytes) else str(model), sess_options=opts,
                                           providers=providers)
    except Exception as exc:  # ORT raises InvalidProtobuf/Fail/etc. for bad files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TicketpackError(f"{what} is not a loadable ONNX model ({first[:300]})") from None
    if chosen == "cuda" and _NAMES["cuda"] not in session.get_providers():
        # onnxruntime-gpu lists CUDA as available whenever it was built with it, then falls back to the CPU when
        # the CUDA, cuBLAS or cuDNN libraries (or a GPU) are missing at session creation
        why = _cuda_failure(printed.getvalue())
        why = f" ({why})" if why else ""
        if provider == "cuda":
            raise FieldError(
                f"onnxruntime offers CUDA but could not start it for {what}: no GPU visible, or the CUDA/cuBLAS/cuDNN "
                f"libraries its release needs are missing{why}; see docs/gpu.md, or use `provider` cpu",
                fields=["provider"])
        warnings.warn(f"CUDA could not start for {what}{why}: running on the CPU", ProviderFallbackWarning,
                      stacklevel=2)
        chosen = "cpu"
    return session, chosen


def _cuda_failure(banner: str) -> str:
    """The reason in onnxruntime's fallback banner: "CUDA failure 100: no CUDA-capable device is detected", or the
    library that failed to load, rather than the C++ signature it starts with."""
    for pattern in (r"(CUDA (?:failure|error)[^;\n]*)", r"with error: ([^\n]*)", r"EP Error ([^\n]*)"):
        if m := re.search(pattern, banner):
            return m.group(1).strip()[:200]
    return ""


class ProviderFallbackWarning(UserWarning):
    """``auto`` found CUDA offered but could not start it, and runs on the CPU."""
