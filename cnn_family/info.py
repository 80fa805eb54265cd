"""What a trained family is, in words, from its manifest: ``python -m cnn_family info PATH``.

For a family that arrives from somewhere else (a colleague, Google Drive, a Colab run): what it
was trained on and how, how it votes, and whether this machine runs the versions it was saved
with. ``--check`` also loads it and votes on a few simulated frames.

Example:
    >>> print(describe("models/hsi_family"))  # doctest: +SKIP
    models/hsi_family: a family folder, complete
      members      18 DeepDog members (width 0.25), 3 per category
    ...
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from cnn_family.family import (
    FamilyFormatError,
    _companion_beside,
    _companion_in,
    read_manifest,
    vote_rule,
)

_NAMES = {"deepdog": "DeepDog", "vgg_like": "VGG-like", "wolkow": "Wolkow"}


def _companion_line(path: Path, manifest: dict, form: str) -> tuple[bool, str]:
    """Whether the family votes with a spectral companion, and where it comes from."""
    from cnn_family.spectral import FILE_NAME

    if form == "exported":
        with zipfile.ZipFile(path) as z:
            if FILE_NAME in z.namelist():
                return True, "inside the file"
        if _companion_beside(path, manifest) is not None:
            return True, f"{FILE_NAME} of the family folder beside it (same training data)"
    elif _companion_in(path) is not None:
        fitted = manifest.get("companion") or {}
        n, on = fitted.get("frames"), fitted.get("data")
        if "simulated" in fitted:
            on = "simulated frames"
        about = (
            f", fitted on {n:,} frames" + (f" of {on}" if on else "") if isinstance(n, int) else ""
        )
        return True, FILE_NAME + about
    why = (manifest.get("companion") or {}).get("why")
    return False, "none" + (f" ({why})" if why else "") + ": the members vote alone"


def _version_line(saved: Mapping[str, str], here: Mapping[str, str]) -> str:
    keys = [k for k in ("keras", "backend", "tensorflow", "numpy", "h5py") if k in saved]
    text = ", ".join(f"{k} {saved[k]}" for k in keys) or "not recorded"
    differ = [f"{k} {here[k]}" for k in keys if k in here and str(here[k]) != str(saved[k])]
    if not keys:
        return text
    if differ:
        return f"saved with {text}; here: {', '.join(differ)} (it should still load: Keras 3 files)"
    return f"saved with {text}; the same here"


def describe(path: str | Path, *, here: Mapping[str, str] | None = None) -> str:
    """A few lines on the family at ``path`` (folder or exported file), from its manifest.

    ``here``: the versions to compare with (default: this machine's,
    :func:`cnn_family.backend.versions`).
    """
    path = Path(path)
    manifest, form = read_manifest(path)
    if here is None:
        from cnn_family.backend import versions

        here = versions()
    cats = list(manifest["categories"])
    k = manifest.get("members_per_category")
    if not isinstance(k, int):
        k = len(manifest["members"]) // len(cats)
    status = manifest.get("status", "complete" if form == "exported" else "unknown")
    head = f"{path}: {'a family folder' if form == 'folder' else 'an exported family file'}"
    head += f", {status}"
    if status == "partial":
        done = len(manifest.get("members_done", []))
        head += f" (a shard: {done} of {len(manifest['members'])} members; merge the shards first)"
    elif status not in ("complete",):
        head += " (training not finished: rerun its command to resume)"
    arch = manifest.get("architecture", "?")
    opts = manifest.get("builder_options") or {}
    width = f" (width {opts['width']})" if "width" in opts else ""
    rows = [
        ("members", f"{k * len(cats)} {_NAMES.get(arch, arch)} members{width}, {k} per category"),
        ("categories", ", ".join(cats)),
    ]
    inp = manifest.get("input") or {}
    if inp:
        rows.append(("input", f"{tuple(inp.get('shape', ()))} {inp.get('dtype', '')}".strip()))
    has_comp, comp_text = _companion_line(path, manifest, form)
    rows.append(("vote", vote_rule(k, companion=has_comp)))
    rows.append(("companion", comp_text))
    data = manifest.get("data") or {}
    tr = manifest.get("training") or {}
    if data or tr:
        src = data.get("path") or "simulated frames (stm_sim)"
        what = f"{src}: {data.get('n_frames', '?'):,} frames" if data else src
        if data.get("n_sessions"):
            what += f", {data['n_sessions']} sessions"
        if data.get("fingerprint"):
            what += f" (fingerprint {data['fingerprint'][:8]})"
        bits = [f"{tr['epochs']} epochs"] if "epochs" in tr else []
        bits += [f"label rule {tr['label_rule']}"] if "label_rule" in tr else []
        bits += [f"{tr['targets']} targets"] if "targets" in tr else []
        bits += [f"seed {tr['seed']}"] if "seed" in tr else []
        rows.append(("trained on", what + ("; " + ", ".join(bits) if bits else "")))
    init = manifest.get("init_from")
    if init:
        idata = init.get("data") or {}
        src = idata.get("path") or "simulated frames"
        n = idata.get("n_frames")
        rows.append(
            ("started from", f"{init.get('path')} ({f'{n:,} ' if isinstance(n, int) else ''}{src})")
        )
    pos = manifest.get("train_positive_rate") or {}
    if pos:
        rows.append(("positives", ", ".join(f"{c} {100 * float(v):.1f} %" for c, v in pos.items())))
    rows.append(("versions", _version_line(manifest.get("versions") or {}, here)))
    if manifest.get("command"):
        rows.append(("command", str(manifest["command"])))
    width_col = max(len(r[0]) for r in rows) + 2
    return "\n".join([head] + [f"  {name.ljust(width_col)}{text}" for name, text in rows])


def check(path: str | Path, *, frames: int = 8, seed: int = 0) -> str:
    """Load the family and vote on ``frames`` simulated frames: one line on how it went.

    Raises :class:`FamilyFormatError` when a vote comes back with NaN or out-of-range values.
    """
    from cnn_family.family import Family
    from stm_sim.dataset import make_arrays

    t0 = time.perf_counter()
    fam = Family.load(path)
    t1 = time.perf_counter()
    size = int((fam.manifest.get("input") or {}).get("shape", [128])[0])
    x = make_arrays(frames, seed=seed, size=size)["images"]
    vote = fam.vote(x)
    t2 = time.perf_counter()
    p = vote.member_probs
    if not (np.isfinite(p).all() and p.min() >= 0.0 and p.max() <= 1.0):
        raise FamilyFormatError(
            f"{path}: expected member probabilities in [0, 1], got values from "
            f"{np.nanmin(p):.3g} to {np.nanmax(p):.3g} (NaN: {int(np.isnan(p).sum())})"
        )
    return (
        f"loads in {t1 - t0:.1f} s; votes on {frames} simulated frames in {t2 - t1:.2f} s "
        f"({p.shape[2]} voters per category); every probability in [0, 1]"
    )
