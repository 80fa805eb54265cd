"""The stacked family graph computes exactly what its members compute, and exports to one file."""

import keras
import numpy as np
import pytest

from cnn_family import CNN_global, Family, FamilyFormatError
from cnn_family.stacked import (
    GroupedPointwise,
    StackError,
    count_flops,
    fold_batchnorm,
    member_index_range,
    stack_members,
    unstack_weights,
)

TINY_DD = dict(width=0.125, max_filters=32)


def _members(n, seed=0, **kw):
    out = []
    for i in range(n):
        keras.utils.set_random_seed(seed + i)
        out.append(CNN_global("deepdog")((32, 32, 1), 1, name=f"m{i}", **{**TINY_DD, **kw}))
    return out


def _frames(n, rng, hw=32):
    return rng.integers(0, 256, (n, hw, hw, 1)).astype(np.float32)


def _randomise_bn(models, rng):
    # Fresh BatchNorm layers are the identity at inference; random statistics test the folding.
    for m in models:
        for lay in m.layers:
            if isinstance(lay, keras.layers.BatchNormalization):
                c = lay.gamma.shape[0]
                lay.set_weights(
                    [
                        rng.uniform(0.5, 2, c),
                        rng.normal(0, 0.5, c),
                        rng.normal(0, 0.5, c),
                        rng.uniform(0.5, 2, c),
                    ]
                )


def test_stack_equals_members_in_inference_and_training(rng):
    ms = _members(3)
    _randomise_bn(ms, rng)
    x = _frames(8, rng)
    stack = stack_members(ms)
    want = np.concatenate([np.asarray(m(x, training=False)) for m in ms], axis=1)
    np.testing.assert_allclose(np.asarray(stack(x, training=False)), want, atol=1e-5)
    np.testing.assert_allclose(np.asarray(fold_batchnorm(stack)(x)), want, atol=1e-5)
    # BatchNorm in training mode normalises per channel, so batch statistics stay per member.
    want_tr = np.concatenate([np.asarray(m(x, training=True)) for m in ms], axis=1)
    np.testing.assert_allclose(np.asarray(stack(x, training=True)), want_tr, atol=1e-5)


def test_unstack_gives_the_members_back(rng):
    ms = _members(2)
    _randomise_bn(ms, rng)
    back = unstack_weights(stack_members(ms), _members(2, seed=100))
    for a, b in zip(ms, back, strict=True):
        for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
            np.testing.assert_array_equal(wa, wb)


def test_grouped_pointwise_equals_keras_grouped_conv(rng):
    x = rng.normal(size=(2, 5, 5, 6)).astype(np.float32)
    ours = GroupedPointwise(9, 3, use_bias=True)
    ref = keras.layers.Conv2D(9, 1, groups=3, use_bias=True)
    ours.build(x.shape)
    ref.build(x.shape)
    ref.set_weights(
        [w.astype(np.float32) for w in (rng.normal(size=(1, 1, 2, 9)), rng.normal(size=9))]
    )
    ours.set_weights(ref.get_weights())
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(ref(x)), atol=1e-5)
    with pytest.raises(ValueError, match="multiple of groups"):
        GroupedPointwise(10, 3)


def test_members_of_other_shapes_or_kinds_do_not_stack():
    with pytest.raises(StackError, match="differ in shape"):
        stack_members([*_members(1), *_members(1, max_filters=16)])
    wolkow = CNN_global("wolkow")((32, 32, 1), 1, width=0.1)
    with pytest.raises(StackError, match="expected a DeepDog"):
        stack_members([wolkow])
    fam = Family({"Dimers": [wolkow, CNN_global("wolkow")((32, 32, 1), 1, width=0.1)]})
    assert fam.fused_kind == "side_by_side" and fam.fused.output_shape == (None, 2)
    x = np.random.default_rng(0).integers(0, 256, (3, 32, 32), dtype=np.uint8)
    assert fam.features(x).shape == (3, 2 * wolkow.layers[-1].input.shape[-1])


def test_flops_add_up_over_the_stack():
    ms = _members(3)
    assert count_flops(stack_members(ms)) == 3 * count_flops(ms[0])
    assert count_flops(fold_batchnorm(stack_members(ms))) == 3 * count_flops(ms[0])
    assert count_flops(ms[0]) > 0


def test_family_votes_through_the_stack_and_exports_to_one_file(tiny_family, sim_frames, tmp_path):
    assert tiny_family.fused_kind == "stacked"
    x = sim_frames.images[:10]
    path = tiny_family.export(tmp_path / "fam.keras")
    again = Family.load(path)
    assert again.fused_kind == "exported" and again.categories == tiny_family.categories
    np.testing.assert_allclose(again.predict_members(x), tiny_family.predict_members(x), atol=1e-6)
    assert again.manifest["architecture"] == "deepdog"
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(FamilyFormatError, match=r"exported by Family\.export"):
        Family.load(bad)
    with pytest.raises(ValueError, match=r"ending in \.keras"):
        tiny_family.export(tmp_path / "fam.h5")


def test_predict_members_is_independent_of_the_chunk_size(tiny_family, sim_frames):
    x = sim_frames.images[:20]
    a = tiny_family.predict_members(x, batch_size=3)
    b = tiny_family.predict_members(x, batch_size=64)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_member_ranges():
    assert member_index_range("0-2,5", 18) == [0, 1, 2, 5]
    assert member_index_range("17", 18) == [17]
    for bad, msg in [
        ("0-18", "outside"),
        ("3-1", "outside"),
        ("a-b", "ranges like"),
        ("1,1", "twice"),
    ]:
        with pytest.raises(ValueError, match=msg):
            member_index_range(bad, 18)
