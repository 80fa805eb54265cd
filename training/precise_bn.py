"""Precise BatchNorm: recompute the moving statistics of a trained network under its final weights.

During training, BatchNorm keeps an exponential moving average of batch statistics (momentum
0.99, a window of about 100 steps) while RMSprop keeps changing the weights underneath it, so
at the end the stored statistics describe earlier networks. In inference mode the members'
probabilities then drift: on a held-out fold of the real data every member of the family sat
below 0.5 on every frame (no positive vote at all, mean precision 0.00) while the ranking was
fine (ROC-AUC 0.75). Recomputing the statistics as plain averages over training frames, with
the final weights (Wu & Johnson 2021, "Rethinking Batch in BatchNorm": precise BN), moved the
same fold to mean precision 0.45 and mean ROC-AUC 0.87, with no retraining.

Example:
    >>> precise_batchnorm(model, train_frames)                      # doctest: +SKIP
    >>> apply_to_family("runs/accuracy/fold0", train_frameset)     # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from training.data import check_images

MARKER = "precise (population statistics over up to {n} training frames, final weights)"


def precise_batchnorm(
    model, images, *, batch_size: int = 64, max_frames: int = 2048, seed: int = 0
):
    """Set every BatchNorm layer's moving mean and variance to the average batch statistics
    of ``images`` (uint8 (N, H, W) or (N, H, W, 1)) under the model's current weights.

    Returns ``model`` (changed in place). Up to ``max_frames`` frames, in whole batches.
    """
    import keras

    from cnn_family.stacked import iter_layers

    x = check_images(images)
    if x.ndim == 3:
        x = x[..., None]
    if len(x) < batch_size:
        raise ValueError(
            f"precise_batchnorm: expected at least one batch ({batch_size} frames), got {len(x)}"
        )
    bns = [lay for lay in iter_layers(model) if isinstance(lay, keras.layers.BatchNormalization)]
    if not bns:
        return model
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(x))[: max(batch_size, min(max_frames, len(x)))]
    old = [lay.momentum for lay in bns]
    try:
        for step, i in enumerate(range(0, len(pick) - batch_size + 1, batch_size), start=1):
            # momentum (k-1)/k turns the moving average into the plain mean of k batches.
            for lay in bns:
                lay.momentum = (step - 1) / step
            model(x[np.sort(pick[i : i + batch_size])].astype(np.float32), training=True)
    finally:
        for lay, m in zip(bns, old, strict=True):
            lay.momentum = m
    return model


def apply_to_family(family_dir: str | Path, frames, *, max_frames: int = 2048) -> bool:
    """Precise BatchNorm for every member of a finished family folder, on ``frames`` (its
    training frames). Members are rewritten atomically and the manifest records it, so a rerun
    skips work already done. Returns True when something was changed.
    """
    import keras

    from training.io import save_model_atomic, write_json_atomic

    family_dir = Path(family_dir)
    mf = family_dir / "manifest.json"
    manifest = json.loads(mf.read_text())
    if manifest.get("status") != "complete":
        raise ValueError(
            f"{family_dir}: expected a complete family, got {manifest.get('status')!r}"
        )
    if manifest.get("batchnorm", "").startswith("precise"):
        return False
    done = set(manifest.get("precise_bn_members", []))
    images = frames.images if hasattr(frames, "images") else frames
    # The batches the members trained on, as the trainer's own pass uses (fewer frames: one batch).
    batch_size = max(1, min(int(manifest.get("training", {}).get("batch_size", 64)), len(images)))
    for m in manifest["members"]:
        if m["name"] in done:
            continue
        path = family_dir / m["file"]
        model = keras.models.load_model(path, compile=False)
        precise_batchnorm(
            model, images, batch_size=batch_size, max_frames=max_frames, seed=int(m["seed"])
        )
        save_model_atomic(model, path)
        done.add(m["name"])
        manifest["precise_bn_members"] = sorted(done)
        write_json_atomic(mf, manifest)
        keras.backend.clear_session(free_memory=True)
    manifest.pop("precise_bn_members", None)
    manifest["batchnorm"] = MARKER.format(n=min(max_frames, len(images)))
    write_json_atomic(mf, manifest)
    exported = family_dir / "family.keras"
    if exported.exists():
        from cnn_family import Family

        Family.load(family_dir).export(exported)
    return True
