"""Which Keras backend runs, and which accelerators it sees.

The project trains and votes on TensorFlow by default (CPU wheels on a laptop or CI, Colab's
GPU). Keras 3 runs the same builders, the same ``.keras`` files and the same training code on
JAX or PyTorch too (``KERAS_BACKEND=jax``), which matters where a GPU machine ships a CUDA that
the TensorFlow wheels were not built for: a family trained under JAX loads and votes under
TensorFlow unchanged (the ``.keras`` format holds weights, not backend code).

Only the few places that touch the backend directly ask here: the input pipeline (``tf.data``
under TensorFlow, a NumPy :class:`keras.utils.PyDataset` otherwise), the GPU check, the grouped
1x1 convolution, and the versions written into a manifest.

>>> from cnn_family.backend import backend_name, gpu_names
>>> backend_name() in ("tensorflow", "jax", "torch", "numpy")
True
"""

from __future__ import annotations

import contextlib
import functools
import platform


def backend_name() -> str:
    """The active Keras backend (``KERAS_BACKEND``; TensorFlow when unset)."""
    import keras

    return keras.backend.backend()


@functools.cache
def gpu_names() -> tuple[str, ...]:
    """Names of the GPUs the active backend can use (empty on a CPU machine)."""
    name = backend_name()
    if name == "tensorflow":
        import tensorflow as tf

        out = []
        for g in tf.config.list_physical_devices("GPU"):
            try:
                out.append(tf.config.experimental.get_device_details(g).get("device_name", g.name))
            except Exception:  # details are best-effort; the device itself is what counts
                out.append(g.name)
        return tuple(out)
    if name == "jax":
        import jax

        return tuple(d.device_kind for d in jax.devices() if d.platform == "gpu")
    if name == "torch":
        import torch

        return tuple(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return ()


def on_gpu() -> bool:
    """True when the active backend computes on a GPU."""
    return bool(gpu_names())


def versions() -> dict[str, str]:
    """Versions of Python, Keras, the active backend and the data libraries (for manifests)."""
    import h5py
    import keras
    import numpy as np
    import sklearn

    name = backend_name()
    out = {"python": platform.python_version(), "keras": keras.__version__, "backend": name}
    with contextlib.suppress(ImportError):
        # Recorded under TensorFlow and JAX alike: TF is the default runtime that loads the files.
        import tensorflow as tf

        out["tensorflow"] = tf.__version__
    if name == "jax":
        import jax

        out["jax"] = jax.__version__
    elif name == "torch":
        import torch

        out["torch"] = torch.__version__
    out.update(numpy=np.__version__, h5py=h5py.__version__, **{"scikit-learn": sklearn.__version__})
    return out
