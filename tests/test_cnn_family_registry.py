import keras
import numpy as np
import pytest

from cnn_family import CNN_global, UnknownModelError, list_models
from cnn_family.builders import deepdog

SMALL = {
    "deepdog": dict(width=0.125, max_filters=64),
    "vgg_like": dict(width=0.25),
    "wolkow": dict(width=0.25),
}


def test_registry_lists_the_three_builders():
    assert {"deepdog", "vgg_like", "wolkow"} <= set(list_models())


def test_unknown_name_names_the_available_models():
    with pytest.raises(ValueError, match=r"available models: .*deepdog") as e:
        CNN_global("resnet9000")
    assert isinstance(e.value, UnknownModelError)


@pytest.mark.parametrize("name", list_models())
def test_every_builder_outputs_probabilities_and_round_trips(name, tmp_path, rng):
    model = CNN_global(name)((64, 64, 1), 6, **SMALL.get(name, {}))
    x = rng.integers(0, 256, (3, 64, 64, 1)).astype("uint8")
    p = np.asarray(model.predict(x, verbose=0))
    assert p.shape == (3, 6)
    assert (p >= 0).all() and (p <= 1).all()
    model.save(tmp_path / "m.keras")
    # compile=False: the untrained optimizer holds no state to restore (resuming training
    # with its optimizer is tested in test_training_trainer.py)
    back = keras.models.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_array_equal(p, np.asarray(back.predict(x, verbose=0)))


def test_deepdog_full_width_is_the_2018_net():
    m = deepdog((128, 128, 1), 1)
    assert m.count_params() == 2_149_025  # ≈ 2.15 M, DESIGN §2
    seps = [layer for layer in m.layers if isinstance(layer, keras.layers.SeparableConv2D)]
    assert [s.filters for s in seps] == [
        32,
        64,
        128,
        128,
        256,
        256,
        512,
        512,
        512,
        512,
        512,
        512,
        1024,
    ]
    assert sum(s.strides[0] == 2 for s in seps) == 4


def test_builders_reject_bad_shapes():
    with pytest.raises(ValueError, match=r"\(height, width, 1\)"):
        deepdog((128, 128, 3), 1)
    with pytest.raises(ValueError, match="output_number"):
        deepdog((128, 128, 1), 0)


# The 2018 head is built on purpose here, and Keras rightly warns about it.
@pytest.mark.filterwarnings("ignore:You are using a softmax over axis -1")
def test_wolkow_sigmoid_learns_where_the_2018_softmax_could_not(rng):
    """A toy problem (bright vs dark frames). The 2018 net ended in softmax over one unit."""
    keras.utils.set_random_seed(0)
    n = 64
    y = (np.arange(n) % 2).astype("float32")[:, None]
    x = (
        (rng.normal(60, 10, (n, 16, 16, 1)) + 120 * y[:, :, None, None])
        .clip(0, 255)
        .astype("uint8")
    )
    model = CNN_global("wolkow")((16, 16, 1), 1, width=0.25, learning_rate=1e-3)
    model.fit(x, y, epochs=15, batch_size=16, verbose=0)
    acc = float(np.mean((model.predict(x, verbose=0) > 0.5) == y))
    assert acc > 0.95

    # The 2018 head: a softmax over a single unit is 1.0 for every input, so nothing is learnt.
    inp = keras.Input((16, 16, 1))
    h = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inp))
    out = keras.layers.Dense(1, activation="softmax")(keras.layers.Dense(8, activation="relu")(h))
    old = keras.Model(inp, out)
    old.compile("adam", "binary_crossentropy")
    old.fit(x, y, epochs=3, batch_size=16, verbose=0)
    p = old.predict(x, verbose=0)
    assert np.allclose(p, 1.0)
    assert float(np.mean((p > 0.5) == y)) == pytest.approx(0.5)  # the positive fraction
