"""The CNN builders: DeepDog (2018), VGG-like and Wolkow (Rashidi & Wolkow 2018).

Every builder scales its input by 1/255 inside the model, so a saved file carries its own
preprocessing and takes uint8 grey frames (N, H, W, 1) as they come from the data layer.
"""

from __future__ import annotations

import keras
from keras import layers

from cnn_family.registry import register_model

# DeepDog's separable stack after the first convolution: (filters, stride). DESIGN §2.
DEEPDOG_LAYERS: tuple[tuple[int, int], ...] = (
    (32, 1),
    (64, 2),
    (128, 1),
    (128, 2),
    (256, 1),
    (256, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 2),
    (1024, 1),
)


def _check_shape(input_shape, output_number: int) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or shape[-1] != 1 or min(shape) < 1:
        raise ValueError(f"input_shape: expected (height, width, 1), got {input_shape}")
    if int(output_number) < 1:
        raise ValueError(f"output_number: expected a positive integer, got {output_number}")
    return shape


def _filters(f: int, width: float) -> int:
    return max(4, round(f * width))


def _head(x, output_number: int, dropout: float):
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    # One sigmoid per label: multi-label output, and never a softmax over one unit (always 1.0).
    return layers.Dense(output_number, activation="sigmoid", name="predictions", dtype="float32")(x)


def _compile(model: keras.Model, optimizer) -> keras.Model:
    model.compile(
        optimizer=optimizer,
        loss="binary_crossentropy",
        metrics=[keras.metrics.BinaryAccuracy(name="acc"), keras.metrics.AUC(name="auc")],
    )
    return model


@register_model
def deepdog(
    input_shape=(128, 128, 1),
    output_number: int = 1,
    *,
    width: float = 1.0,
    max_filters: int | None = None,
    dropout: float = 0.0,
    learning_rate: float = 1e-3,
    bn_momentum: float = 0.99,
    name: str = "deepdog",
) -> keras.Model:
    """DeepDog: Conv 32 s2, 13 SeparableConv2D (BN + ELU each), global average pool, sigmoid.

    ``width`` multiplies every filter count (MobileNet's alpha; 1.0 = the 2018 net, about 2.15 M
    parameters). ``max_filters`` drops the layers whose nominal filter count exceeds it (a shorter
    trunk for CPU training). RMSprop at ``learning_rate``. ``bn_momentum`` is the BatchNorm
    moving-average momentum (0.99 is Keras' default and the 2018 net's; a few hundred steps leave
    the moving statistics biased towards their initial values, so short runs want 0.9).

    >>> m = deepdog((128, 128, 1), 1, width=0.25)  # doctest: +SKIP
    """
    shape = _check_shape(input_shape, output_number)
    if not 0 < width <= 4:
        raise ValueError(f"width: expected a multiplier in (0, 4], got {width}")
    inp = keras.Input(shape, name="frame")
    x = layers.Rescaling(1.0 / 255.0, name="scale")(inp)
    x = layers.Conv2D(
        _filters(32, width), 3, strides=2, padding="same", use_bias=False, name="conv0"
    )(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name="conv0_bn")(x)
    x = layers.Activation("elu", name="conv0_elu")(x)
    for i, (f, s) in enumerate(DEEPDOG_LAYERS, start=1):
        if max_filters is not None and f > max_filters:
            break
        x = layers.SeparableConv2D(
            _filters(f, width), 3, strides=s, padding="same", use_bias=False, name=f"sep{i}"
        )(x)
        x = layers.BatchNormalization(momentum=bn_momentum, name=f"sep{i}_bn")(x)
        x = layers.Activation("elu", name=f"sep{i}_elu")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    out = _head(x, output_number, dropout)
    return _compile(keras.Model(inp, out, name=name), keras.optimizers.RMSprop(learning_rate))


@register_model
def vgg_like(
    input_shape=(128, 128, 1),
    output_number: int = 1,
    *,
    width: float = 1.0,
    learning_rate: float = 0.01,
    name: str = "vgg_like",
) -> keras.Model:
    """VGG-like: 2x Conv32, pool, dropout .25, 2x Conv64, pool, dropout .25, Dense 256, dropout .5.

    SGD with Nesterov momentum 0.9 at ``learning_rate``. Measured (``benchmarks/architectures.py``):
    trained as a family member on simulated frames it stays at chance (mean ROC-AUC 0.56 on
    held-out simulated frames; DeepDog 0.86), and BatchNorm after each conv, with SGD or Adam,
    did not change that. Kept as DESIGN §2's baseline; use :func:`deepdog`.
    """
    shape = _check_shape(input_shape, output_number)
    inp = keras.Input(shape, name="frame")
    x = layers.Rescaling(1.0 / 255.0, name="scale")(inp)
    for b, f in enumerate((32, 64), start=1):
        for c in (1, 2):
            x = layers.Conv2D(
                _filters(f, width), 3, padding="same", activation="relu", name=f"b{b}_conv{c}"
            )(x)
        x = layers.MaxPooling2D(2, name=f"b{b}_pool")(x)
        x = layers.Dropout(0.25, name=f"b{b}_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(_filters(256, width), activation="relu", name="fc")(x)
    out = _head(x, output_number, 0.5)
    opt = keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True)
    return _compile(keras.Model(inp, out, name=name), opt)


@register_model
def wolkow(
    input_shape=(128, 128, 1),
    output_number: int = 1,
    *,
    width: float = 1.0,
    learning_rate: float = 1e-4,
    name: str = "wolkow",
) -> keras.Model:
    """Rashidi & Wolkow (2018): Conv 30 5x5, Conv 40 5x5, pool, Dense 128; Adam at 1e-4.

    The 2018 code ended with a softmax over one unit (constant 1.0, zero gradient); this ends
    with a sigmoid per output. Measured (``benchmarks/architectures.py``): trained as a family
    member on simulated frames it learns little (mean ROC-AUC 0.64 on held-out simulated frames;
    DeepDog 0.86), with or without BatchNorm. Kept as DESIGN §2's baseline; use :func:`deepdog`.
    """
    shape = _check_shape(input_shape, output_number)
    inp = keras.Input(shape, name="frame")
    x = layers.Rescaling(1.0 / 255.0, name="scale")(inp)
    x = layers.Conv2D(_filters(30, width), 5, activation="relu", name="conv1")(x)
    x = layers.Conv2D(_filters(40, width), 5, activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(_filters(128, width), activation="relu", name="fc")(x)
    out = _head(x, output_number, 0.0)
    return _compile(keras.Model(inp, out, name=name), keras.optimizers.Adam(learning_rate))
