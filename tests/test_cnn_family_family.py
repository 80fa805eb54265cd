import json

import numpy as np
import pytest

from cnn_family import Family, FamilyFormatError, Vote, majority_polling
from training.data import CATEGORIES


def test_vote_rounds_each_member_and_needs_two_of_three():
    probs = np.array(
        [
            [
                [0.9, 0.6, 0.1],
                [0.4, 0.49, 0.9],
                [0.5, 0.2, 0.1],
                [0.1, 0.2, 0.3],
                [0.7, 0.8, 0.9],
                [0.0, 0.0, 0.6],
            ]
        ]
    )
    v = Vote.from_member_probs(probs, CATEGORIES, y_true=np.array([[1, 0, 0, 0, 1, 0]]))
    assert v.hard.tolist() == [[1, 0, 0, 0, 1, 0]]
    np.testing.assert_allclose(v.agreement[0], [2 / 3, 2 / 3, 2 / 3, 1, 1, 2 / 3])
    np.testing.assert_allclose(v.soft[0], probs[0].mean(axis=1))
    assert v.exact_match == 1.0
    with pytest.raises(ValueError, match="y_test"):
        Vote.from_member_probs(probs, CATEGORIES, y_true=np.zeros((2, 6)))


def test_fused_pass_equals_the_2018_member_by_member_vote(tiny_family, sim_frames):
    x, y = sim_frames.images[:20], sim_frames.labels()[:20]
    fused = majority_polling(tiny_family, x, y)
    naive = majority_polling(tiny_family.members, x, y)
    np.testing.assert_allclose(fused.member_probs, naive.member_probs, atol=1e-5)
    assert np.array_equal(fused.hard, naive.hard)
    assert fused.exact_match == naive.exact_match
    assert fused.member_probs.shape == (20, 6, 3)


def test_family_is_one_graph_with_18_branches(tiny_family):
    assert tiny_family.fused.output_shape == (None, 18)
    assert repr(tiny_family).startswith("Family(6 categories x 3 members")


def test_family_rejects_wrong_frames(tiny_family):
    with pytest.raises(ValueError, match="expected 128x128"):
        tiny_family.vote(np.zeros((2, 64, 64), np.uint8))
    with pytest.raises(ValueError, match=r"NaN"):
        tiny_family.vote(np.full((1, 128, 128), np.nan))


def test_unfinished_family_says_so(tmp_path, tiny_family_dir):
    with pytest.raises(FileNotFoundError, match=r"manifest\.json"):
        Family.load(tmp_path)
    m = json.loads((tiny_family_dir / "manifest.json").read_text())
    m["status"] = "training"
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(FamilyFormatError, match="not finished"):
        Family.load(tmp_path)


@pytest.mark.parametrize(
    "change, match",
    [
        # Found by fuzzing manifests: each gave a KeyError, TypeError or IndexError.
        ({"categories": None}, "categories: expected a list of names"),
        ({"categories": "Rows"}, "categories: expected a list of names"),
        ({"members": []}, "members: expected a list of"),
        ({"members": [1, 2]}, "members: expected a list of"),
        ({"members": None}, "members: expected a list of"),
    ],
)
def test_a_malformed_manifest_names_the_field(tmp_path, tiny_family_dir, change, match):
    m = json.loads((tiny_family_dir / "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps({**m, **change}))
    with pytest.raises(FamilyFormatError, match=match):
        Family.load(tmp_path)
    (tmp_path / "manifest.json").write_text("[]")
    with pytest.raises(FamilyFormatError, match="expected a JSON object"):
        Family.load(tmp_path)


def test_majority_polling_rejects_non_families():
    with pytest.raises(TypeError, match="family_dict"):
        majority_polling([1, 2, 3], np.zeros((1, 128, 128), np.uint8))


def test_tta_averages_the_four_flips_of_each_frame(tiny_family, sim_frames):
    x = sim_frames.images[:4]
    views = [x, x[:, :, ::-1], x[:, ::-1, :], x[:, ::-1, ::-1]]
    expected = np.mean([tiny_family.predict_members(v) for v in views], axis=0)
    got = tiny_family.predict_members(x, tta=True)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # A frame equal to its own flips votes exactly as without TTA.
    flat = np.full((2, 128, 128), 90, np.uint8)
    np.testing.assert_allclose(
        tiny_family.predict_members(flat, tta=True), tiny_family.predict_members(flat), atol=1e-5
    )
    assert tiny_family.vote(x, tta=True).hard.shape == (4, 6)


def test_undoing_class_weights_divides_the_balanced_odds_back_out(tiny_family):
    fam = Family(tiny_family.members, manifest={"training": {"class_weight": "balanced"}})
    probs = np.full((1, 6, 3), 0.5, np.float32)
    probs[0, :, 0] = 0.9
    with pytest.raises(FamilyFormatError, match="train_positive_rate"):
        fam.undo_class_weights(probs)
    fam.manifest["train_positive_rate"] = dict.fromkeys(CATEGORIES, 0.5)
    np.testing.assert_allclose(fam.undo_class_weights(probs), probs, atol=1e-6)  # prior 1/2
    fam.manifest["train_positive_rate"]["Tip change"] = 0.1
    got = fam.undo_class_weights(probs)[0, CATEGORIES.index("Tip change")]
    # odds 9 and 1, times 0.1 / 0.9
    np.testing.assert_allclose(got, [0.5, 0.1, 0.1], atol=1e-6)
    unweighted = Family(tiny_family.members, manifest={"training": {"class_weight": "none"}})
    assert unweighted.undo_class_weights(probs) is probs


def test_a_trained_family_records_its_training_prior(tiny_family_dir, sim_frames):
    m = json.loads((tiny_family_dir / "manifest.json").read_text())
    want = sim_frames.labels().mean(axis=0)
    np.testing.assert_allclose([m["train_positive_rate"][c] for c in CATEGORIES], want, atol=1e-6)


def test_features_are_each_members_pooled_features_in_member_order(tiny_family, sim_frames):
    import keras

    x = sim_frames.images[:8]
    feats = tiny_family.features(x, batch_size=5)  # a short last chunk too
    members = [m for c in tiny_family.categories for m in tiny_family.members[c]]
    own = [
        keras.Model(m.inputs, m.layers[-1].input).predict(x[..., None].astype("float32"), verbose=0)
        for m in members
    ]
    np.testing.assert_allclose(feats, np.concatenate(own, axis=1), atol=1e-4)
    with pytest.raises(ValueError, match="expected 128x128"):
        tiny_family.features(np.zeros((2, 64, 64), np.uint8))


def _onnx_benchmark():
    import importlib.util

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("ox", ROOT / "benchmarks" / "onnx_runtime.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_onnx_benchmark_names_what_to_install_when_it_is_missing(monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as on a clone without it
    assert _onnx_benchmark().main([]) == 2
    assert "pip install onnxruntime tf2onnx" in capsys.readouterr().err


def test_onnx_benchmark_gives_the_same_votes_as_tensorflow(monkeypatch, tiny_family_dir):
    pytest.importorskip("onnxruntime", reason="optional: pip install onnxruntime tf2onnx")
    pytest.importorskip("tf2onnx", reason="optional: pip install onnxruntime tf2onnx")
    r = _onnx_benchmark().measure(tiny_family_dir, repeats=3, batch=4, threads=1)
    assert r["max_abs_prob_diff"] < 1e-4 and set(r["batch1_ms"]) == {"tensorflow", "onnxruntime"}


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_the_vote_in_words_is_the_vote_counted(k):
    # The manifest's sentence must be the rule Vote applies: "more than m of n" positive.
    import re

    from cnn_family.family import vote_rule

    for companion in (False, True):
        n = k + companion
        m, of = map(
            int, re.search(r"more than (\d+) of (\d+)", vote_rule(k, companion=companion)).groups()
        )
        assert of == n
        for yes in range(n + 1):
            probs = np.zeros((1, 1, n), np.float32)
            probs[..., :yes] = 0.9
            assert Vote.from_member_probs(probs, ["Rows"]).hard[0, 0] == (yes > m)
