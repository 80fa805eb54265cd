"""CNN builders, their registry and the family that votes.

>>> from cnn_family import CNN_global, list_models
>>> list_models()  # doctest: +SKIP
['deepdog', 'vgg_like', 'wolkow']
"""

import os as _os

# TensorFlow's C++ start-up chatter (CUDA probes on CPU machines) is noise for users.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from cnn_family import builders  # noqa: F401  (registers every builder)
from cnn_family.family import Family, FamilyFormatError, Vote, majority_polling
from cnn_family.registry import CNN_global, UnknownModelError, list_models, register_model

__all__ = [
    "CNN_global",
    "Family",
    "FamilyFormatError",
    "UnknownModelError",
    "Vote",
    "list_models",
    "majority_polling",
    "register_model",
]
