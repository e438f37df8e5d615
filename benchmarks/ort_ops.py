"""The onnxruntime CPU facts the exported graph is shaped by (docs/ARCHITECTURE.md, decision 17).

Single-node (or two-node) ONNX graphs on the tensor sizes of FNOReg-3D at 160x192x224, each timed
in this process (best of 3 after a warm-up, 2 intra-op threads by default, the CPU arena on):

* Transpose: a single axis moved (onnxruntime copies blocks) against a permutation that splits
  the innermost axis (element by element);
* 1x1 convolution as MatMul + Add (+ Relu) against a kernel-1 Conv (+ Relu, fused).

Usage::

    python benchmarks/ort_ops.py            # writes benchmarks/results/ort_ops.md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as C  # noqa: E402

NAME = "ort_ops"
VOXELS = 160 * 192 * 224


def best_ms(nodes, inputs: dict, initializers: dict, threads: int, repeats: int = 3) -> float:
    """Best wall time (ms) of ``session.run`` on the graph made of ``nodes`` (output "y")."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(v.shape)) for k, v in inputs.items()],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(v, k) for k, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    sess.run(None, inputs)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sess.run(None, inputs)
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times)


def main() -> None:
    from onnx import helper

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--output", default=None)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    t = args.threads
    rows = []

    def row(what, shape, ms):
        rows.append([what, shape, f"{ms:.1f}"])
        print(f"{what:70s} {shape:28s} {ms:8.1f} ms", flush=True)

    # transposes of a 4-channel Fourier Unit volume and of its stacked spectrum
    x = rng.random((4, 160, 192, 224), dtype=np.float32)
    for perm, what in (([0, 3, 1, 2], "Transpose, one axis moved (innermost to the front)"),
                       ([0, 2, 3, 1], "Transpose, one axis moved (to the end)")):
        row(what, str(x.shape), best_ms([helper.make_node("Transpose", ["x"], ["y"], perm=perm)], {"x": x}, {}, t))
    s = rng.random((4, 2, 160, 192, 16, 8), dtype=np.float32)
    row("Transpose splitting the innermost axis (4, 2, 160, 192, 16, 8) -> perm 0,4,1,5,2,3", str(s.shape),
        best_ms([helper.make_node("Transpose", ["x"], ["y"], perm=[0, 4, 1, 5, 2, 3])], {"x": s}, {}, t))
    # 1x1 convolution, 8 -> 8 channels over the 1 mm volume
    v = rng.random((1, 8, VOXELS), dtype=np.float32)
    W = rng.random((8, 8), dtype=np.float32)
    b = rng.random(8, dtype=np.float32)
    mm = [helper.make_node("MatMul", ["w", "x"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"])]
    row("1x1 conv as MatMul + Add", str(v.shape),
        best_ms([mm[0], helper.make_node("Add", ["m", "b"], ["y"])], {"x": v}, {"w": W, "b": b[:, None]}, t))
    row("1x1 conv as MatMul + Add + Relu", str(v.shape),
        best_ms(mm + [helper.make_node("Relu", ["a"], ["y"])], {"x": v}, {"w": W, "b": b[:, None]}, t))
    row("1x1 conv as Conv (kernel 1, bias)", str(v.shape),
        best_ms([helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[1])], {"x": v},
                {"w": W[:, :, None], "b": b}, t))
    row("1x1 conv as Conv + Relu (fused by onnxruntime)", str(v.shape),
        best_ms([helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[1]), helper.make_node("Relu", ["c"], ["y"])],
                {"x": v}, {"w": W[:, :, None], "b": b}, t))

    head = C.header("onnxruntime CPU: the operator patterns the exported FNOReg graph is shaped by", t, [
        f"- command: python benchmarks/ort_ops.py {' '.join(sys.argv[1:])}",
        "- timing: best of 3 session.run after one warm-up, in this process; default session options (CPU arena on)"])
    lines = head + [""] + C.markdown_table(["graph", "input", "best ms"], rows)
    path = C.write_results(args.output or NAME, lines)
    print(f"\nwritten to {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
