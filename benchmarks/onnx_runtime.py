"""Would ONNX Runtime vote faster than TensorFlow on a CPU? The stacked family, both ways.

    pip install onnxruntime tf2onnx            # optional: not in requirements.txt
    python benchmarks/onnx_runtime.py          # -> benchmarks/results/onnx_runtime.json

The family's stacked graph (what ``Family.vote`` runs) is exported with Keras' own
``model.export(format="onnx")`` (tf2onnx under the TensorFlow backend), checked to give the
same member probabilities on random frames, and timed beside ``Family.predict_members`` at
batch 1 and in batches, medians over repeats, in one process. The project adopts an ONNX path
only if this shows a gain on the CPU the bridge runs on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _median_ms(fns: dict, repeats: int, warmup: int = 5) -> dict:
    """Median ms per call of each function, timed in turns (a busy spell hits both alike)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    ts = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            ts[k].append(time.perf_counter() - t0)
    return {k: round(float(np.median(v) * 1e3), 2) for k, v in ts.items()}


def measure(family_dir: Path, *, repeats: int, batch: int, threads: int | None) -> dict:
    """TensorFlow against ONNX Runtime on the same stacked graph; figures in ms and frames/s."""
    import keras
    import onnxruntime as ort

    from cnn_family import Family

    fam = Family.load(family_dir)
    model = fam.fused
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch, *model.input_shape[1:])).astype(np.uint8)
    ref = fam.predict_members(x).reshape(len(x), -1)  # also builds the graph, as export needs
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "family.onnx"
        t0 = time.perf_counter()
        model.export(str(path), format="onnx", verbose=False)
        export_s = time.perf_counter() - t0
        size_mb = path.stat().st_size / 1e6
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        # Idle ORT threads spin by default, and would slow the TensorFlow call timed after them.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name

    def ort_run(xb):
        # The ONNX graph takes float32 frames; the cast is part of what a caller pays.
        return sess.run(None, {name: xb.astype(np.float32)})[0]

    diff = float(np.abs(ort_run(x) - ref).max())
    x1 = x[:1]
    one = _median_ms(
        {"tensorflow": lambda: fam.predict_members(x1), "onnxruntime": lambda: ort_run(x1)}, repeats
    )
    many = _median_ms(
        {"tensorflow": lambda: fam.predict_members(x), "onnxruntime": lambda: ort_run(x)},
        max(3, repeats // 10),
    )
    return {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
        "versions": {
            "keras": keras.__version__,
            "tensorflow": __import__("tensorflow").__version__,
            "onnxruntime": ort.__version__,
            "tf2onnx": __import__("tf2onnx").__version__,
        },
        "family": str(family_dir),
        "fused_kind": fam.fused_kind,
        "export_seconds": round(export_s, 2),
        "onnx_file_mb": round(size_mb, 2),
        "max_abs_prob_diff": diff,
        "batch1_ms": one,
        f"batch{batch}_frames_per_second": {k: round(batch * 1e3 / v, 1) for k, v in many.items()},
        "ort_intra_op_threads": threads or "default",
        "repeats": repeats,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--family",
        default=str(ROOT / "models" / "hsi_family"),
        help="family folder (default: the shipped one)",
    )
    ap.add_argument(
        "--out",
        default=str(ROOT / "benchmarks" / "results" / "onnx_runtime.json"),
        help="results file (default: benchmarks/results/onnx_runtime.json)",
    )
    ap.add_argument("--repeats", type=int, default=200, help="timed calls at batch 1 (default 200)")
    ap.add_argument("--batch", type=int, default=64, help="frames in a batch (default 64)")
    ap.add_argument(
        "--threads", type=int, default=None, help="ONNX Runtime intra-op threads (default: its own)"
    )
    args = ap.parse_args(argv)
    try:
        import onnxruntime  # noqa: F401
        import tf2onnx  # noqa: F401
    except ImportError as e:
        print(
            f"onnx_runtime.py: needs onnxruntime and tf2onnx ({e.name} is missing): "
            "pip install onnxruntime tf2onnx",
            file=sys.stderr,
        )
        return 2
    r = measure(Path(args.family), repeats=args.repeats, batch=args.batch, threads=args.threads)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(r, indent=2) + "\n")
    b = f"batch{args.batch}_frames_per_second"
    print(
        f"same votes to {r['max_abs_prob_diff']:.1e}; batch 1: TensorFlow "
        f"{r['batch1_ms']['tensorflow']} ms, ONNX Runtime {r['batch1_ms']['onnxruntime']} ms; "
        f"{args.batch} frames: {r[b]['tensorflow']} against {r[b]['onnxruntime']} frames/s "
        f"-> {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
