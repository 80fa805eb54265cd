"""Atomic writes: a file is either its old content or its new one, never half of each."""

from __future__ import annotations

import json
import os
import sys
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


# The typed errors the library raises for bad input or an unreachable instrument: each message
# says what was expected and what came, so a command-line user needs that line, not a traceback.
USER_ERRORS = (FileNotFoundError, ValueError, TimeoutError, ConnectionError)


def cli_error(prog: str, e: BaseException) -> int:
    """Print ``e`` as one line on stderr for a command-line user; return the exit status, 2.

    With ``TIPSTATE_TRACEBACK=1`` in the environment the error is raised again instead, for
    the whole traceback.

    >>> cli_error("prog", ValueError("n: expected a positive number of frames, got -1"))
    2
    """
    if os.environ.get("TIPSTATE_TRACEBACK"):
        raise e
    print(f"{prog}: error: {e} [{type(e).__name__}]", file=sys.stderr)
    return 2
