"""A numpy-only simulator of labelled H:Si(100) STM frames (no TensorFlow import).

>>> import numpy as np
>>> from stm_sim import sample_frame_params, render, labels_from_params
>>> rng = np.random.default_rng(0)
>>> fp = sample_frame_params(rng, state="dimers")
>>> frame, labels = render(fp, rng), labels_from_params(fp)
"""

from stm_sim.params import (
    CATEGORIES,
    TIP_STATES,
    FrameParams,
    ScanParams,
    SurfaceParams,
    TipChange,
    TipParams,
    labels_from_params,
    sample_frame_params,
    sample_rotation,
    sample_tip,
)
from stm_sim.render import export, level_lines, render, render_height

__all__ = [
    "CATEGORIES",
    "TIP_STATES",
    "FrameParams",
    "ScanParams",
    "SurfaceParams",
    "TipChange",
    "TipParams",
    "export",
    "labels_from_params",
    "level_lines",
    "render",
    "render_height",
    "sample_frame_params",
    "sample_rotation",
    "sample_tip",
]
