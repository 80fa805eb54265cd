"""G DeepDog members as one network of wide layers: the fast way to train and to vote.

A family of G binary DeepDogs run as G separate graphs costs G x 45 small ops per frame, and on
a CPU at batch 1 that op overhead, not arithmetic, is the time. Because the members share only
their input, they stack exactly:

==========================  ===============================================================
member layer                stacked layer (channels group-major: member 0's, then member 1's)
==========================  ===============================================================
Conv2D(c, 3, s2)            Conv2D(G*c, 3, s2): the frame is the same for every member
BatchNormalization(c)       BatchNormalization(G*c): statistics are per channel anyway
SeparableConv2D(c_out)      DepthwiseConv2D over G*c_in channels, then a 1x1 Conv2D with
                            ``groups=G`` (each member's pointwise weights see only its own
                            channels)
Dense(1, sigmoid)           a 1x1 Conv2D(G, groups=G) on the pooled features
==========================  ===============================================================

Member g of the stack computes exactly what member g computes alone (to float rounding), in
training (BatchNorm batch statistics are per channel) and in inference, so a stack can be
trained in one pass over the data and split back into ordinary member files, or built from
trained members for voting. The one custom layer, :class:`GroupedPointwise`, is registered on
import, so a saved stack loads wherever ``cnn_family`` is importable.

Example:
    >>> stack = stack_members([m0, m1, m2])          # doctest: +SKIP
    >>> stack(frames).shape                          # doctest: +SKIP
    (N, 3)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import keras
import numpy as np
from keras import layers


@keras.saving.register_keras_serializable(package="cnn_family")
class GroupedPointwise(layers.Layer):
    """A 1x1 convolution in ``groups`` independent groups (channels group-major).

    Keras' own ``Conv2D(groups=...)`` sends grouped convolutions through XLA on every backend
    call because old TensorFlow CPU kernels lacked them; on TF 2.21's CPU, XLA's grouped
    convolution is about 10x slower forward and 50x slower backward than ``tf.nn.conv2d``,
    which handles groups natively (checked equal in tests/test_cnn_family_stacked.py).
    """

    def __init__(self, filters: int, groups: int, *, use_bias=False, activation=None, **kw):
        super().__init__(**kw)
        self.filters, self.groups, self.use_bias = int(filters), int(groups), bool(use_bias)
        self.activation = keras.activations.get(activation)
        if self.filters % self.groups:
            raise ValueError(f"filters: expected a multiple of groups={groups}, got {filters}")

    def build(self, input_shape):
        cin = int(input_shape[-1])
        if cin % self.groups:
            raise ValueError(
                f"{self.name}: input channels {cin} are not a multiple of groups={self.groups}"
            )
        self.kernel = self.add_weight(
            name="kernel",
            shape=(1, 1, cin // self.groups, self.filters),
            initializer="glorot_uniform",
        )
        self.bias = (
            self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
            if self.use_bias
            else None
        )

    def call(self, x):
        kernel = keras.ops.cast(self.kernel, x.dtype)
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            y = tf.nn.conv2d(x, kernel, 1, "VALID")
        else:
            # JAX and torch infer the group count from the kernel's input channels.
            y = keras.ops.conv(x, kernel, strides=1, padding="valid")
        if self.bias is not None:
            y = y + keras.ops.cast(self.bias, y.dtype)
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "groups": self.groups,
            "use_bias": self.use_bias,
            "activation": keras.activations.serialize(self.activation),
        }


class StackError(ValueError):
    """Members that cannot be stacked (not DeepDogs, or DeepDogs of different shapes)."""


@dataclasses.dataclass(frozen=True)
class DeepDogSpec:
    """The shape of one DeepDog: what a stack needs to know about its members."""

    input_shape: tuple[int, int, int]
    conv0: int
    sep: tuple[tuple[int, int], ...]  # (filters, stride) per separable layer
    bn_momentum: float
    bn_epsilon: float

    @classmethod
    def of(cls, model) -> DeepDogSpec:
        """Read the spec from a DeepDog built by :func:`cnn_family.builders.deepdog`."""
        names = {lay.name: lay for lay in model.layers}
        if "conv0" not in names or "predictions" not in names:
            raise StackError(
                f"{model.name}: expected a DeepDog (layers conv0 ... predictions), "
                f"got layers {[lay.name for lay in model.layers][:6]}..."
            )
        sep = []
        i = 1
        while f"sep{i}" in names:
            lay = names[f"sep{i}"]
            sep.append((int(lay.filters), int(lay.strides[0])))
            i += 1
        bn = names["conv0_bn"]
        if int(names["predictions"].units) != 1:
            raise StackError(
                f"{model.name}: expected a binary member (1 output), "
                f"got {names['predictions'].units} outputs"
            )
        return cls(
            input_shape=tuple(int(s) for s in model.input_shape[1:]),
            conv0=int(names["conv0"].filters),
            sep=tuple(sep),
            bn_momentum=float(bn.momentum),
            bn_epsilon=float(bn.epsilon),
        )


def build_stack(
    spec: DeepDogSpec, groups: int, *, fold_bn: bool = False, name: str = "family_stack"
) -> keras.Model:
    """An uncompiled stack of ``groups`` DeepDogs of shape ``spec``: frame -> (N, groups).

    ``fold_bn=True`` builds the inference form: every BatchNorm folded into the convolution
    before it (a scale on its kernel and a bias), which drops 14 passes over the largest
    activations; fill it with :func:`fold_batchnorm`.
    """
    if int(groups) < 1:
        raise ValueError(f"groups: expected a positive integer, got {groups}")
    g = int(groups)
    bn = {"momentum": spec.bn_momentum, "epsilon": spec.bn_epsilon}

    def norm(x, lname):
        return x if fold_bn else layers.BatchNormalization(name=lname, **bn)(x)

    inp = keras.Input(spec.input_shape, name="frame")
    x = layers.Rescaling(1.0 / 255.0, name="scale")(inp)
    x = layers.Conv2D(g * spec.conv0, 3, strides=2, padding="same", use_bias=fold_bn, name="conv0")(
        x
    )
    x = norm(x, "conv0_bn")
    x = layers.Activation("elu", name="conv0_elu")(x)
    for i, (f, s) in enumerate(spec.sep, start=1):
        x = layers.DepthwiseConv2D(3, strides=s, padding="same", use_bias=False, name=f"sep{i}_dw")(
            x
        )
        x = GroupedPointwise(g * f, g, use_bias=fold_bn, name=f"sep{i}_pw")(x)
        x = norm(x, f"sep{i}_bn")
        x = layers.Activation("elu", name=f"sep{i}_elu")(x)
    x = layers.GlobalAveragePooling2D(keepdims=True, name="gap")(x)
    x = GroupedPointwise(
        g, g, use_bias=True, activation="sigmoid", dtype="float32", name="predictions"
    )(x)
    out = layers.Flatten(name="member_probs", dtype="float32")(x)
    return keras.Model(inp, out, name=name)


def fold_batchnorm(stack: keras.Model) -> keras.Model:
    """The inference form of a trained ``stack`` (BatchNorm folded into the convolutions).

    Equal to ``stack(x, training=False)`` to float rounding.
    """
    spec_layers = [lay.name for lay in stack.layers]
    g = int(stack.output.shape[-1])
    sep = []
    i = 1
    while f"sep{i}_pw" in spec_layers:
        dw, pw = stack.get_layer(f"sep{i}_dw"), stack.get_layer(f"sep{i}_pw")
        sep.append((pw.filters // g, int(dw.strides[0])))
        i += 1
    bn0 = stack.get_layer("conv0_bn")
    spec = DeepDogSpec(
        input_shape=tuple(int(s) for s in stack.input.shape[1:]),
        conv0=stack.get_layer("conv0").filters // g,
        sep=tuple(sep),
        bn_momentum=float(bn0.momentum),
        bn_epsilon=float(bn0.epsilon),
    )
    folded = build_stack(spec, g, fold_bn=True, name=f"{stack.name}_folded")

    def fold(conv_name, bn_name):
        kernel = stack.get_layer(conv_name).get_weights()[0]
        gamma, beta, mean, var = stack.get_layer(bn_name).get_weights()
        scale = gamma / np.sqrt(var + spec.bn_epsilon)
        folded.get_layer(conv_name).set_weights([kernel * scale, beta - mean * scale])

    fold("conv0", "conv0_bn")
    for i in range(1, len(sep) + 1):
        folded.get_layer(f"sep{i}_dw").set_weights(stack.get_layer(f"sep{i}_dw").get_weights())
        fold(f"sep{i}_pw", f"sep{i}_bn")
    folded.get_layer("predictions").set_weights(stack.get_layer("predictions").get_weights())
    return folded


def _pairs(spec: DeepDogSpec):
    """(member layer, stacked layers, how member weights map onto them)."""
    yield "conv0", ["conv0"], [(0, 3)]
    yield "conv0_bn", ["conv0_bn"], [(0, 0), (1, 0), (2, 0), (3, 0)]
    for i in range(1, len(spec.sep) + 1):
        # SeparableConv2D weights: [depthwise (3,3,cin,1), pointwise (1,1,cin,cout)].
        yield f"sep{i}", [f"sep{i}_dw", f"sep{i}_pw"], [(0, 2), (1, 3)]
        yield f"sep{i}_bn", [f"sep{i}_bn"], [(0, 0), (1, 0), (2, 0), (3, 0)]
    yield "predictions", ["predictions"], [(0, 3), (1, 0)]


def _to_stacked(w: np.ndarray, member_layer: str, idx: int) -> np.ndarray:
    if member_layer == "predictions" and idx == 0:
        return w.reshape(1, 1, w.shape[0], 1)  # Dense (cf, 1) -> 1x1 conv (1, 1, cf, 1)
    return w


def stack_weights(stack: keras.Model, members: Sequence[keras.Model]) -> keras.Model:
    """Copy the weights of ``members`` (in order) into ``stack``; returns ``stack``."""
    spec = DeepDogSpec.of(members[0])
    for m in members[1:]:
        if DeepDogSpec.of(m) != spec:
            raise StackError(
                f"members differ in shape: {members[0].name} is {spec}, {m.name} is "
                f"{DeepDogSpec.of(m)}"
            )
    for mname, snames, mapping in _pairs(spec):
        per_member = [m.get_layer(mname).get_weights() for m in members]
        # The stacked layers' weights, in order, are the member weights' concatenations.
        flat = [
            np.concatenate([_to_stacked(pm[i], mname, i) for pm in per_member], axis=axis)
            for i, axis in mapping
        ]
        pos = 0
        for sname in snames:
            lay = stack.get_layer(sname)
            n = len(lay.get_weights())
            lay.set_weights(flat[pos : pos + n])
            pos += n
    return stack


def unstack_weights(stack: keras.Model, members: Sequence[keras.Model]) -> list[keras.Model]:
    """Split the weights of ``stack`` into ``members`` (DeepDogs of the stack's shape)."""
    g = len(members)
    spec = DeepDogSpec.of(members[0])
    for mname, snames, mapping in _pairs(spec):
        flat = [w for s in snames for w in stack.get_layer(s).get_weights()]
        parts = [np.split(flat[i], g, axis=axis) for i, axis in mapping]
        for j, m in enumerate(members):
            ws = [p[j] for p in parts]
            if mname == "predictions":
                ws[0] = ws[0].reshape(ws[0].shape[2], 1)
            m.get_layer(mname).set_weights(ws)
    return list(members)


def stack_members(members: Sequence[keras.Model], *, name: str = "family_stack") -> keras.Model:
    """One stacked network that computes every member's probability: frame -> (N, len(members)).

    Raises :class:`StackError` when the members are not DeepDogs of one shape.
    """
    if not members:
        raise StackError("stack_members: expected at least one member, got none")
    spec = DeepDogSpec.of(members[0])
    return stack_weights(build_stack(spec, len(members), name=name), members)


def count_flops(model: keras.Model) -> int:
    """Multiply-adds x 2 per frame in the convolution and dense layers of ``model``.

    Counted from layer shapes (the convolutions are all but a few percent of the arithmetic;
    BatchNorm, activations and pooling are left out).
    """
    total = 0
    for lay in iter_layers(model):
        cls = type(lay).__name__
        if cls == "GroupedPointwise":
            out = lay.output.shape
            cin = int(lay.input.shape[-1])
            total += 2 * int(np.prod(out[1:-1])) * (cin // lay.groups) * int(out[-1])
            continue
        if cls in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense"):
            out = lay.output.shape
            cin = int(lay.input.shape[-1])
            spatial = int(np.prod(out[1:-1])) if len(out) > 2 else 1
            if cls == "Dense":
                total += 2 * cin * int(out[-1])
                continue
            kh, kw = lay.kernel_size
            if cls == "Conv2D":
                total += 2 * spatial * kh * kw * (cin // int(lay.groups)) * int(out[-1])
            elif cls == "DepthwiseConv2D":
                total += 2 * spatial * kh * kw * cin
            else:  # separable: depthwise then pointwise
                total += 2 * spatial * (kh * kw * cin + cin * int(out[-1]))
    return int(total)


def iter_layers(model):
    """Every layer of ``model``, nested models walked into."""
    for lay in model.layers:
        if isinstance(lay, keras.Model):
            yield from iter_layers(lay)
        else:
            yield lay


def member_index_range(text: str, total: int) -> list[int]:
    """``"0-5"`` -> [0, 1, 2, 3, 4, 5]; ``"0-5,12,15-17"`` likewise; checked against ``total``."""
    out: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ValueError(f"members: expected ranges like '0-5' or '0-5,12', got {text!r}")
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) is not None else a
        if b < a or b >= total:
            raise ValueError(
                f"members: {part!r} is outside 0-{total - 1} (this family has {total} members)"
            )
        out.extend(range(a, b + 1))
    if len(set(out)) != len(out):
        raise ValueError(f"members: {text!r} names a member twice")
    return sorted(out)
