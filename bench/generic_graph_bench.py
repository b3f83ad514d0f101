"""Is the one generic export path (torch.onnx.export) as fast as a hand-built graph of the same weights?

    python bench/generic_graph_bench.py [--rounds 30]

The `bow` model (mean of token embeddings, one hidden layer) with ticketpack's default text preprocessing
(unigrams, 256 ids, 16,384 buckets), exported three ways, timed interleaved in one process on ONNX Runtime, 1 thread:

- `hand-built`: the graph ticketpack used to build with onnx.helper (Gather → ReduceSum → Div by the token count
  → MatMul/Add/Relu → MatMul/Add), the reference;
- `generic, masked mean`: torch.onnx.export of the old model code, which multiplied the (batch, tokens, dim)
  embeddings by a 0/1 padding mask before summing;
- `generic`: torch.onnx.export of the current model code, which sums the embeddings directly (the padding row of
  an `nn.Embedding(padding_idx=0)` is zero and stays zero) and divides by the count of real tokens, counted as
  `(ids > 0)` summed in float (one Greater and a float ReduceSum, as the hand-built graph does).

Prints p50 latency ratios to the hand-built graph at batch 1 and 256 and writes
bench/results/generic_graph_dim<embed-dim>.json (`--embed-dim 4`: the width of a compacted neuron ticket, where the
token-count branch of the graph weighs most).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def hand_built(state: dict[str, np.ndarray], max_tokens: int, classes: int) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = {
        "embed.weight": state["embed.weight"], "fc.weight.T": state["fc.weight"].T.copy(), "fc.bias": state["fc.bias"],
        "out.weight.T": state["out.weight"].T.copy(), "out.bias": state["out.bias"],
        "axes": np.array([1], np.int64), "zero": np.array(0, np.int64), "one": np.array(1.0, np.float32),
    }
    n = helper.make_node
    nodes = [
        n("Gather", ["embed.weight", "input"], ["emb"], axis=0),
        n("ReduceSum", ["emb", "axes"], ["summed"], keepdims=0),
        n("Greater", ["input", "zero"], ["present_b"]),
        n("Cast", ["present_b"], ["present"], to=TensorProto.FLOAT),
        n("ReduceSum", ["present", "axes"], ["count0"], keepdims=1),
        n("Max", ["count0", "one"], ["count"]),
        n("Div", ["summed", "count"], ["mean"]),
        n("MatMul", ["mean", "fc.weight.T"], ["h0"]), n("Add", ["h0", "fc.bias"], ["h1"]), n("Relu", ["h1"], ["h"]),
        n("MatMul", ["h", "out.weight.T"], ["o0"]), n("Add", ["o0", "out.bias"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "bow", [helper.make_tensor_value_info("input", TensorProto.INT64, ["batch", max_tokens])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=30, help="Interleaved timing rounds.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--embed-dim", type=int, default=64, help="bow width (4: the size of a compacted neuron ticket).")
    args = p.parse_args()

    import onnxruntime as ort
    import torch

    from ticketpack.data import TextPreprocessing
    from ticketpack.export.exporter import _graph
    from ticketpack.models import ModelSpec, build, example_input
    from ticketpack.models.text import BagOfWords
    from ticketpack.pruning.targets import prunable_names

    torch.manual_seed(args.seed)
    prep = TextPreprocessing(ngrams=1, num_buckets=16384, max_tokens=256)  # bow's featurization in the export bench
    model = build(ModelSpec(name="bow", options={"embed_dim": args.embed_dim, "hidden": args.embed_dim}), prep, 2).eval()
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    weights = {n: state[n] for n in prunable_names(model)}
    graphs = {"hand-built": hand_built(state, prep.max_tokens, 2),
              "generic": _graph(model, example_input(prep), 17, weights).SerializeToString()}
    current = BagOfWords.forward

    def masked_mean(self, ids):
        present = (ids != 0).unsqueeze(-1).to(torch.float32)
        return self.out(self.fc((self.embed(ids) * present).sum(1) / present.sum(1).clamp(min=1.0)).relu())

    BagOfWords.forward = masked_mean
    try:
        graphs["generic, masked mean"] = _graph(model, example_input(prep), 17, weights).SerializeToString()
    finally:
        BagOfWords.forward = current

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    sessions = {k: ort.InferenceSession(g, opts, providers=["CPUExecutionProvider"]) for k, g in graphs.items()}
    rng, order_rng = np.random.default_rng(args.seed), random.Random(args.seed)
    results = {}
    for batch in (1, 256):
        x = rng.integers(1, prep.num_buckets, size=(batch, prep.max_tokens)).astype(np.int64)
        x[:, 150:] = 0  # padding, as in a short review
        ref = sessions["hand-built"].run(None, {"input": x})[0]
        times = {k: [] for k in sessions}
        for k, s in sessions.items():
            assert np.abs(s.run(None, {"input": x})[0] - ref).max() < 1e-5, k
        reps = 200 if batch == 1 else 8
        for _ in range(args.rounds):
            keys = list(sessions)
            order_rng.shuffle(keys)
            for k in keys:
                start = time.perf_counter()
                for _ in range(reps):
                    sessions[k].run(None, {"input": x})
                times[k].append((time.perf_counter() - start) / reps)
        p50 = {k: float(np.median(v)) for k, v in times.items()}
        results[batch] = {k: {"p50_ms": 1e3 * v, "ratio_to_hand_built": v / p50["hand-built"]} for k, v in p50.items()}
        for k, v in results[batch].items():
            print(f"batch {batch:>3}  {k:<22} p50 {v['p50_ms']:8.4f} ms   × hand-built {v['ratio_to_hand_built']:.3f}")
    meta = {"command": "python bench/generic_graph_bench.py " + " ".join(sys.argv[1:]), "threads": 1,
            "machine": f"{platform.machine()}", "onnxruntime": ort.__version__, "torch": torch.__version__}
    meta["embed_dim"] = args.embed_dim
    out = ROOT / "bench" / "results" / f"generic_graph_dim{args.embed_dim}.json"
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
