"""Atomic writes: a file is either its old content or its new one, never half of each."""

from __future__ import annotations

import json
import os
from pathlib import Path

from training.data import atomic_path


def write_json_atomic(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    path, tmp = atomic_path(path)
    try:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_default) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_model_atomic(model, path: str | os.PathLike) -> Path:
    """``model.save`` to a temporary sibling, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keras picks the format from the suffix, so the temporary name keeps ".keras".
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
