"""Speed of voting and training: the fused family against the 2018 way and against the machine.

    python benchmarks/speed.py            # writes benchmarks/results/speed.json, prints the README table
    python benchmarks/speed.py --quick    # fewer repeats, for a smoke run

Everything is measured in one run, side by side, and reported as medians and ratios (shared
machines are noisy):

* **Peak**: a 2048x2048 float32 matmul, the machine's practical FLOP/s ceiling for TensorFlow.
* **Voting**: the 2018 way (18 separately loaded models, one ``predict`` per member) against the
  side-by-side graph (18 member graphs in one ``tf.function``) and the stacked family (one
  graph of wide layers, BatchNorm folded; what ``Family.vote`` runs), at batch 1 and 256.
  FLOPs per frame are counted from the layer shapes; the fraction of peak is FLOPs x frames/s
  over the matmul peak.
* **Loading**: time to a first vote in a fresh process, from 18 member files or from the
  one-file export (``Family.export``).
* **Training**: images/s through one member, the 18 members one after another (the 2018 way:
  each with its own input pipeline, so 1/18 of one member's rate) and the fused engine (all 18
  in one pass; branches on a CPU, the stack on a GPU), against the bound that the FLOP count
  (forward + backward, about 3x the forward) and the peak allow; and the time it takes to
  train the shipped family's configuration (3,978 frames x 8 epochs) end to end, estimated
  from these rates, beside the time the shipped family's own sequential run took.

A GPU gets the same measurements under ``"gpu"``. Under another Keras backend
(``KERAS_BACKEND=jax`` on a GPU machine without TensorFlow, ``benchmarks/gpu_session.sh``) only
the GPU is measured and the file's CPU column is kept; ``--vote-only`` skips loading and
training for a short lease.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _median_time(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def machine() -> dict:
    from cnn_family.backend import backend_name, gpu_names, versions

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    v = versions()
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "gpus": list(gpu_names()),
        "backend": backend_name(),
        "tensorflow": v.get("tensorflow"),
        **({"jax": v["jax"]} if "jax" in v else {}),
        "keras": v["keras"],
        "python": platform.python_version(),
    }


def _on(device: str):
    """Run on ``device`` ("/CPU:0", "/GPU:0"): TensorFlow places by scope; JAX and torch use
    their default device, which is the GPU when there is one (only the GPU is measured then)."""
    from cnn_family.backend import backend_name

    if backend_name() == "tensorflow":
        import tensorflow as tf

        return tf.device(device)
    return contextlib.nullcontext()


def peak_flops(device: str, repeats: int) -> float:
    from cnn_family.backend import backend_name

    # A GPU needs a larger product to be busy; 2048 fills 2 CPU cores.
    n = 8192 if device.startswith("/GPU") else 2048
    if backend_name() == "jax":
        import jax

        ka, kb = jax.random.split(jax.random.key(0))
        a = jax.random.normal(ka, (n, n), "float32")
        b = jax.random.normal(kb, (n, n), "float32")
        f = jax.jit(lambda a, b: (a @ b).sum())
        dt = _median_time(lambda: float(f(a, b)), repeats)
        return 2 * n**3 / dt
    import tensorflow as tf

    with tf.device(device):
        a = tf.random.normal([n, n])
        b = tf.random.normal([n, n])
        f = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
        dt = _median_time(lambda: f().numpy(), repeats)
    return 2 * n**3 / dt


def _members(family):
    return [m for c in family.categories for m in family.members[c]]


def voting(family, frames: np.ndarray, device: str, repeats: int) -> dict:
    from cnn_family.backend import backend_name
    from cnn_family.stacked import count_flops

    members = _members(family)
    x1 = frames[:1, ..., None]
    xb = frames[:256, ..., None]
    out: dict = {"ms_batch1": {}, "frames_per_second_batch256": {}}
    with _on(device):
        # The 2018 way: one predict call per member.
        xf1, xfb = x1.astype(np.float32), xb.astype(np.float32)

        def naive(x):
            return [m.predict(x, verbose=0) for m in members]

        out["ms_batch1"]["naive"] = 1e3 * _median_time(lambda: naive(xf1), max(3, repeats // 4))
        dt = _median_time(lambda: naive(xfb), 1, warmup=1)
        out["frames_per_second_batch256"]["naive"] = len(xb) / dt
        print(f"   naive: {out['ms_batch1']['naive']:.1f} ms at batch 1", flush=True)

        # 18 member graphs side by side in one tf.function.
        side = family._side_by_side(members)
        if backend_name() == "tensorflow":
            import tensorflow as tf

            fn = tf.function(
                lambda x: side(tf.cast(x, tf.float32), training=False),
                input_signature=[tf.TensorSpec([None, *x1.shape[1:]], tf.uint8)],
            )

            def fs(x):
                return fn(x).numpy()
        else:

            def fs(x):
                return side.predict_on_batch(x.astype(np.float32))

        out["ms_batch1"]["side_by_side"] = 1e3 * _median_time(lambda: fs(x1), repeats)
        dt = _median_time(lambda: fs(xb), max(2, repeats // 10))
        out["frames_per_second_batch256"]["side_by_side"] = len(xb) / dt

        # The stacked family, as Family.vote runs it (default chunking).
        print(f"   side by side: {out['ms_batch1']['side_by_side']:.1f} ms at batch 1", flush=True)
        out["ms_batch1"]["fused"] = 1e3 * _median_time(lambda: family.predict_members(x1), repeats)
        dt = _median_time(lambda: family.predict_members(xb), max(2, repeats // 10))
        out["frames_per_second_batch256"]["fused"] = len(xb) / dt
        dt = _median_time(lambda: family.predict_members(xb, batch_size=256), max(2, repeats // 10))
        out["frames_per_second_batch256"]["fused_one_call"] = len(xb) / dt
    out["flops_per_frame"] = count_flops(family.fused)
    return out


def loading(family_dir: Path, export: Path, device_env: dict) -> dict:
    code = (
        "import sys, time, numpy as np\n"
        "from cnn_family import Family\n"
        "t=time.perf_counter(); f=Family.load(sys.argv[1]); t1=time.perf_counter()\n"
        "f.predict_members(np.zeros((1,128,128),np.uint8)); t2=time.perf_counter()\n"
        "print(t1-t, t2-t)\n"
    )
    res = {}
    for name, p in (("member_files", family_dir), ("one_file", export)):
        runs = []
        for _ in range(3):
            r = subprocess.run(
                [sys.executable, "-c", code, str(p)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                env={
                    **os.environ,
                    **device_env,
                    # Keep what the caller's path holds (a backend installed beside the
                    # interpreter's own packages, say) after the project.
                    "PYTHONPATH": os.pathsep.join(
                        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
                    ),
                },
                check=True,
            )
            runs.append([float(v) for v in r.stdout.split()[-2:]])
        load, first = np.median(np.array(runs), axis=0)
        res[name] = {"load_s": float(load), "load_and_first_vote_s": float(first)}
    return res


def training(frames, device: str, n: int, epochs: int, flops_18: float, peak: float) -> dict:
    import keras

    from cnn_family import CNN_global
    from training.config import TrainConfig
    from training.data import CATEGORIES
    from training.trainer import (
        _fused_model,
        _Job,
        _resolve_layout,
        make_dataset,
        member_loss_fn,
        member_name,
        member_seed,
    )

    cfg = TrainConfig()
    sub = frames.subset(np.arange(min(n, len(frames))))
    shape = (*sub.images.shape[1:], 1)
    job = _Job(cfg, CNN_global(cfg.architecture), ROOT, sub, None, shape=shape)
    members = [
        {
            "name": member_name(c, k),
            "category": c,
            "seed": member_seed(0, CATEGORIES.index(c), k),
            "_c": CATEGORIES.index(c),
        }
        for c in cfg.categories
        for k in range(cfg.members_per_category)
    ]

    def rate(model, ds) -> float:
        model.fit(ds, epochs=1, verbose=0)  # trace and warm up
        t0 = time.perf_counter()
        model.fit(ds, epochs=epochs, verbose=0)
        return epochs * len(sub) / (time.perf_counter() - t0)

    res: dict = {"frames": len(sub), "epochs_timed": epochs, "batch_size": cfg.batch_size}
    with _on(device):
        m = job.new_member(members[0])
        _, y, w = job.rows_and_weights(members[0])
        ds = make_dataset(
            sub.images, y, w, batch_size=cfg.batch_size, shuffle=True, augment=True, seed=0
        )
        one = rate(m, ds)
        keras.backend.clear_session(free_memory=True)
        layouts = {}
        auto_layout, _, _ = _resolve_layout("auto", "none")
        for layout in ("branches", "stacked"):
            inits = [job.new_member(mm) for mm in members]
            # As the trainer does: the stack on a GPU computes in float16 (float32 weights).
            mixed = device.startswith("/GPU") and layout == "stacked"
            prev = keras.config.dtype_policy()
            try:
                if mixed:
                    keras.config.set_dtype_policy("mixed_float16")
                model = _fused_model(inits, layout, job)
                opt = inits[0].optimizer
                model.compile(
                    optimizer=type(opt).from_config(opt.get_config()),
                    loss=member_loss_fn(len(members)),
                    jit_compile=device.startswith("/GPU"),
                )
            finally:
                keras.config.set_dtype_policy(prev)
            t = np.zeros((len(sub), len(members)), np.float32)
            wt = np.ones_like(t)
            for j, mm in enumerate(members):
                _, yj, wj = job.rows_and_weights(mm)
                t[:, j] = yj
                wt[:, j] = 1.0 if wj is None else wj
            dsf = make_dataset(
                sub.images,
                np.concatenate([t, wt], 1),
                batch_size=cfg.batch_size,
                shuffle=True,
                augment=True,
                seed=0,
            )
            layouts[layout] = rate(model, dsf)
            keras.backend.clear_session(free_memory=True)
    bound = peak / (3.0 * flops_18)
    res["images_per_second"] = {
        "one_member": one,
        "naive_18": one / len(members),
        "fused_18_branches": layouts["branches"],
        "fused_18_stacked": layouts["stacked"],
        "fused_18": layouts[auto_layout],
        "fused_layout": auto_layout,
        "flop_bound_18": bound,
    }
    res["speedup_fused_vs_naive"] = layouts[auto_layout] / (one / len(members))
    res["fraction_of_flop_bound"] = layouts[auto_layout] / bound
    shipped = 3978 * 8  # frames x epochs of models/hsi_family
    res["shipped_config_minutes"] = {
        "naive_estimated": shipped / (one / len(members)) / 60,
        "fused_estimated": shipped / layouts[auto_layout] / 60,
    }
    man = ROOT / "models" / "hsi_family" / "manifest.json"
    if man.exists():
        secs = json.loads(man.read_text()).get("train_seconds_this_run")
        if secs:
            res["shipped_config_minutes"]["naive_measured_when_shipped"] = secs / 60
    return res


def measure(device: str, args, family, frames, export: Path) -> dict:
    print(f"== {device}", flush=True)
    peak = peak_flops(device, args.repeats)
    print(f"   peak {peak / 1e9:.1f} GFLOP/s", flush=True)
    v = voting(family, frames.images, device, args.repeats)
    fps = v["frames_per_second_batch256"]["fused"]
    print(
        f"   vote batch1: fused {v['ms_batch1']['fused']:.1f} ms, "
        f"naive {v['ms_batch1']['naive']:.1f} ms; batch256 fused {fps:.0f} frames/s",
        flush=True,
    )
    vote = {
        "peak_gflops": peak / 1e9,
        "vote_ms_batch1": {"fused": v["ms_batch1"]["fused"], "naive": v["ms_batch1"]["naive"]},
        "vote_ms_batch1_side_by_side": v["ms_batch1"]["side_by_side"],
        "vote_speedup_batch1": v["ms_batch1"]["naive"] / v["ms_batch1"]["fused"],
        "frames_per_second_batch256": fps,
        "frames_per_second_batch256_all": v["frames_per_second_batch256"],
        "flops_per_frame": v["flops_per_frame"],
        "fraction_of_peak": v["flops_per_frame"] * fps / peak,
    }
    if args.vote_only:
        return vote
    env = {} if device.startswith("/GPU") else {"CUDA_VISIBLE_DEVICES": ""}
    load = loading(Path(args.family), export, env)
    print(f"   load {load}", flush=True)
    tr = training(frames, device, args.train_frames, args.train_epochs, v["flops_per_frame"], peak)
    print(f"   train {tr['images_per_second']}", flush=True)
    return {
        **vote,
        "load": load,
        "train_images_per_second": {
            "naive_18": tr["images_per_second"]["naive_18"],
            "fused_18": tr["images_per_second"]["fused_18"],
        },
        "training": tr,
    }


def table(r: dict) -> str:
    rows = [
        "| figure | CPU | GPU |",
        "|---|---|---|",
    ]
    c, g = r["cpu"], r.get("gpu")

    def both(fn, fmt):
        vals = []
        for d in (c, g):
            try:
                vals.append(fmt.format(fn(d)) if d else "not measured (no GPU lent)")
            except (KeyError, TypeError):
                vals.append("-")
        return vals

    spec = [
        (
            "vote, batch 1: 2018 way (18 `predict` calls)",
            lambda d: d["vote_ms_batch1"]["naive"],
            "{:.0f} ms",
        ),
        (
            "vote, batch 1: 18 graphs side by side, one call",
            lambda d: d["vote_ms_batch1_side_by_side"],
            "{:.1f} ms",
        ),
        (
            "vote, batch 1: **stacked family** (`Family.vote`)",
            lambda d: d["vote_ms_batch1"]["fused"],
            "{:.1f} ms",
        ),
        (
            "speed-up at batch 1, stacked vs 2018 way",
            lambda d: d["vote_speedup_batch1"],
            "**{:.0f}x**",
        ),
        (
            "vote, 256 frames: 2018 way",
            lambda d: d["frames_per_second_batch256_all"]["naive"],
            "{:.0f} frames/s",
        ),
        (
            "vote, 256 frames: stacked family",
            lambda d: d["frames_per_second_batch256"],
            "{:.0f} frames/s",
        ),
        ("FLOPs per frame (18 members)", lambda d: d["flops_per_frame"] / 1e6, "{:.0f} M"),
        (
            "measured peak (float32 matmul, 2048² on CPU, 8192² on GPU)",
            lambda d: d["peak_gflops"],
            "{:.0f} GFLOP/s",
        ),
        ("stacked voting, fraction of peak", lambda d: d["fraction_of_peak"], "{:.2f}"),
        (
            "load + first vote: 18 member files",
            lambda d: d["load"]["member_files"]["load_and_first_vote_s"],
            "{:.1f} s",
        ),
        (
            "load + first vote: one-file export",
            lambda d: d["load"]["one_file"]["load_and_first_vote_s"],
            "{:.1f} s",
        ),
        (
            "train, one member",
            lambda d: d["training"]["images_per_second"]["one_member"],
            "{:.0f} img/s",
        ),
        (
            "train 18, one after another (2018 way)",
            lambda d: d["train_images_per_second"]["naive_18"],
            "{:.1f} img/s",
        ),
        (
            "train 18, fused engine",
            lambda d: d["train_images_per_second"]["fused_18"],
            "{:.1f} img/s",
        ),
        ("train 18, fused speed-up", lambda d: d["training"]["speedup_fused_vs_naive"], "{:.2f}x"),
        (
            "train 18, FLOP bound (3x forward FLOPs at peak)",
            lambda d: d["training"]["images_per_second"]["flop_bound_18"],
            "{:.0f} img/s",
        ),
        (
            "train 18, fused share of the FLOP bound",
            lambda d: d["training"]["fraction_of_flop_bound"],
            "{:.2f}",
        ),
        (
            "train 18 **full-width** members (width 1.0), fused stack",
            lambda d: d["training_full_width"]["fused_18_images_per_second"],
            "{:.0f} img/s",
        ),
        (
            "full width, share of the FLOP bound",
            lambda d: d["training_full_width"]["fraction_of_flop_bound"],
            "{:.3f}",
        ),
        (
            "shipped config (3,978 frames x 8 epochs), 2018 way",
            lambda d: d["training"]["shipped_config_minutes"]["naive_estimated"],
            "{:.0f} min (est.)",
        ),
        (
            "shipped config, fused engine",
            lambda d: d["training"]["shipped_config_minutes"]["fused_estimated"],
            "{:.0f} min (est.)",
        ),
    ]
    for label, fn, fmt in spec:
        a, b = both(fn, fmt)
        rows.append(f"| {label} | {a} | {b} |")
    m = r["machine"]
    rows.append("")
    rows.append(f"CPU: {m['cpu']}, {m['cores']} cores, TensorFlow {m['tensorflow']}.")
    gm = r.get("gpu_machine")
    if gm:
        lib = f"JAX {gm['jax']}" if gm.get("jax") else f"TensorFlow {gm.get('tensorflow')}"
        rows.append(
            f"GPU: {', '.join(gm['gpus'])} ({gm['cores']} CPU cores beside it), Keras "
            f"{gm['keras']} on {lib}."
        )
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--family", default=str(ROOT / "models" / "hsi_family"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "speed.json"))
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--train-frames", type=int, default=512)
    ap.add_argument("--train-epochs", type=int, default=2)
    ap.add_argument(
        "--vote-only",
        action="store_true",
        help="peak and voting only (no loading or training figures): for a short GPU lease",
    )
    ap.add_argument("--quick", action="store_true", help="few repeats and frames (smoke run)")
    ap.add_argument("--table-only", action="store_true", help="print the README table of --out")
    args = ap.parse_args(argv)
    if args.table_only:
        print(table(json.loads(Path(args.out).read_text())))
        return 0
    if args.quick:
        args.repeats, args.train_frames, args.train_epochs = 5, 128, 1

    from cnn_family import Family
    from cnn_family.backend import backend_name, on_gpu
    from stm_sim.dataset import make_frameset
    from training.io import write_json_atomic

    family = Family.load(args.family)
    export = Path(args.out).with_name("speed_family_export.keras")
    family.export(export)
    frames = make_frameset(max(256, args.train_frames), seed=0)
    tf_backend = backend_name() == "tensorflow"
    result = {"machine": machine(), "cpu": None, "gpu": None}
    out = Path(args.out)
    if not tf_backend and out.exists():
        # Another backend measures the GPU only (it has no CPU placement to compare on the same
        # machine): keep the CPU column from the TensorFlow run already in the file.
        old = json.loads(out.read_text())
        result.update(cpu=old.get("cpu"), machine=old.get("machine", result["machine"]))
    try:
        if tf_backend:
            result["cpu"] = measure("/CPU:0", args, Family.load(args.family), frames, export)
        if on_gpu():
            result["gpu"] = measure("/GPU:0", args, Family.load(args.family), frames, export)
            result["gpu_machine"] = machine()
            result.pop("gpu_note", None)
        else:
            result["gpu_note"] = f"Keras ({backend_name()}) saw no GPU on this machine"
    finally:
        export.unlink(missing_ok=True)
    write_json_atomic(args.out, result)
    print(f"wrote {args.out}")
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
