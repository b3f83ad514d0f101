"""Export the two models that the runtime-only CI venv tests on (run with the full install, see .ci/run):

    python tests/make_runtime_models.py DIR    # → DIR/digits.onnx, DIR/text.onnx
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from conftest import text_config, tiny_config  # noqa: E402

from ticketpack.export.exporter import export_model  # noqa: E402
from ticketpack.search import search  # noqa: E402


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    search(tiny_config(prune={"rounds": 1}), out / "digits-ticket", force=True)
    export_model(out / "digits-ticket", out / "digits.onnx", level=1, format="compact", threads=1)
    search(text_config(), out / "text-ticket", force=True)
    export_model(out / "text-ticket", out / "text.onnx", level=2, format="compact", threads=1)
    print(out / "digits.onnx", out / "text.onnx")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
