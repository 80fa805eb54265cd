"""A registry of model builders, in the manner of timm's ``register_model`` / ``create_model``.

A builder is a plain function ``builder(input_shape, output_number, **options) -> keras.Model``
returning a *compiled* model. Register one with :func:`register_model`; resolve it by name with
:func:`CNN_global`.

Example:
    >>> from cnn_family import CNN_global
    >>> model = CNN_global("deepdog")((128, 128, 1), 1, width=0.25)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable

_REGISTRY: dict[str, Callable] = {}


class UnknownModelError(ValueError):
    """A model name that is not in the registry."""


def register_model(fn: Callable) -> Callable:
    """Decorator: register ``fn`` under its function name."""
    name = fn.__name__
    if name in _REGISTRY and _REGISTRY[name] is not fn:
        raise ValueError(f"a model named {name!r} is already registered")
    _REGISTRY[name] = fn
    return fn


def list_models() -> list[str]:
    """Names of the registered builders, sorted."""
    return sorted(_REGISTRY)


def CNN_global(name: str) -> Callable:
    """The builder registered as ``name``; unknown names raise and list what is available."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}; available models: {', '.join(list_models())}"
        ) from None
