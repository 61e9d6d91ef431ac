"""The verdict around the class models: a class that rejects an image cannot take it from another; a class
whose held-out scores say nothing is warned of; a registry about to mix unlike inputs says so."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from bank import Registry
from bank.verdict import stats as st
from bank.verdict.fitting import fit_error_stats
from bank.verdict.decision import decide
from bank.kinds.pca import PCAModel
from bank.training.runs import mixing_note


def _stats(rng, mean, spread, n=200):
    return fit_error_stats(np.exp(rng.normal(np.log(mean), spread, n)))


def test_a_class_that_rejects_an_image_changes_no_other_class_verdict():
    rng = np.random.default_rng(0)
    cat, dog = _stats(rng, 0.3, 0.15), _stats(rng, 0.4, 0.15)
    car = _stats(rng, 1e-3, 0.1)  # a class of drawings: tiny errors of its own
    errors = np.array([[0.28, 0.45], [0.5, 0.38], [0.31, 0.33], [2.0, 2.5]])
    before = decide(errors, ["cat", "dog"], [cat, dog], complexity=None)
    with_car = np.c_[errors, [0.1, 0.12, 0.09, 0.2]]  # lower than both, and far too high for car itself
    after = decide(with_car, ["cat", "dog", "car"], [cat, dog, car], complexity=None)
    assert after.flag_error[:, 2].all()  # car rejects them all
    assert (after.flags[:, :2] == before.flags).all()
    assert after.labels == before.labels
    assert after.labels[:2] == ["cat", "dog"]
    np.testing.assert_allclose(after.margin[:, :2], before.margin, equal_nan=True)
    for i in range(4):  # no reason names car
        assert not any("car" in r for k in range(2) for r in after.reasons(i, k))


def test_a_class_that_accepts_an_image_and_fits_it_better_still_flags_the_others():
    rng = np.random.default_rng(1)
    cat, dog = _stats(rng, 0.3, 0.15), _stats(rng, 0.3, 0.15)
    res = decide(np.array([[0.3, 0.2]]), ["cat", "dog"], [cat, dog], complexity=None)
    assert not res.flag_error.any()
    assert res.flag_margin[0, 0] and not res.flag_margin[0, 1]  # dog fits it 33% better and accepts it
    assert res.labels == ["dog"]
    assert "class 'dog'" in res.reasons(0, 0)[0]


def test_the_verdict_is_the_nearest_class_that_accepts_the_image():
    rng = np.random.default_rng(2)
    tight, loose = _stats(rng, 0.1, 0.05), _stats(rng, 0.3, 0.3)
    res = decide(np.array([[0.2, 0.25]]), ["tight", "loose"], [tight, loose], complexity=None)
    assert res.nearest == ["tight"] and res.flag_error[0, 0] and not res.flags[0, 1]
    assert res.labels == ["loose"]
    assert res.records()[0]["label"] == "loose" and res.records()[0]["nearest"] == "tight"


def test_an_image_its_nearest_class_rejects_only_for_its_complexity_is_not_given_to_a_far_worse_fit():
    """A plain 0, simpler than the 0s the class was fitted on: the 0 class fits it best (its error is fine
    for a 0) but flags the input's complexity; the 3 class accepts it with an error 21 times higher. It
    is unknown, not a 3; had the 0 class rejected it by its error, the 3 would take it."""
    rng = np.random.default_rng(3)
    e0, c0 = np.exp(rng.normal(np.log(0.01), 0.3, 200)), np.exp(rng.normal(np.log(3.0), 0.05, 200))
    e3, c3 = np.exp(rng.normal(np.log(0.2), 0.6, 200)), np.exp(rng.normal(np.log(3.0), 0.5, 200))
    zero, three = fit_error_stats(e0, c0), fit_error_stats(e3, c3)
    plain = np.array([[2.0, 2.0]])  # bits per value: far below the 0s' (z about -8), within the 3s'
    res = decide(np.array([[0.01, 0.21]]), ["0", "3"], [zero, three], complexity=plain)
    assert res.flag_complexity[0, 0] and not res.flag_error[0, 0] and not res.own_flags[0, 1]
    assert res.flag_margin[0, 1] and "class '0'" in res.reasons(0, 1)[0]
    assert res.labels == ["unknown"] and res.nearest == ["0"]
    worse = decide(np.array([[0.2, 0.21]]), ["0", "3"], [zero, three], complexity=plain)
    assert worse.flag_error[0, 0] and worse.labels == ["3"]  # the 0 class's error rejects it: the 3 may take it


def test_a_class_whose_held_out_scores_are_all_but_equal_is_warned_of():
    x = np.zeros((60, 8, 8))  # every image the same: reconstructed perfectly, every held-out score 0
    x[:, 2:5, 3] = 1.0
    with pytest.warns(UserWarning, match="all but equal"):
        model = PCAModel(n_components=4).fit(x)
    assert any("all but equal" in w for w in model.training_["warnings"])
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a class with a spread of its own: no such warning
        PCAModel(n_components=4).fit(rng.random((400, 8, 8)))


def test_a_registry_about_to_mix_small_gray_digits_with_colour_photos_says_so(tmp_path):
    rng = np.random.default_rng(0)
    reg = Registry(tmp_path / "reg")
    for c in ("0", "1"):
        reg.register(c, PCAModel(n_components=4).fit(rng.random((40, 8, 8))))
    note = mixing_note(reg, ["cat"], "pca", (200, False))
    assert note and "(0, 1: pca on 8x8 gray" in note and "--registry" in note and "colour" in note
    assert mixing_note(reg, ["2"], "pca", (8, True)) is None  # another digit: alike
    assert mixing_note(reg, ["2"], "hog-ocsvm", (8, True))  # alike images, another kind
    assert mixing_note(Registry(tmp_path / "empty"), ["cat"], "pca", (200, False)) is None


def test_a_kind_whose_scores_crowd_at_zero_gets_its_flag_where_its_held_out_scores_are():
    rng = np.random.default_rng(0)
    held = rng.gamma(0.5, 1.0, 300)  # like a network's surprise: most near 0 nats, a long tail
    plain, shifted = fit_error_stats(held), fit_error_stats(held, shifted_log=True)
    assert st.error_cut(plain, 3, "lognormal") > 10 * held.max()  # the crowd's spread: a flag nothing reaches
    assert held.max() / 2 < st.error_cut(shifted, 3, "lognormal") < 2 * held.max()
    new = rng.gamma(0.5, 1.0, 20000)
    assert 0.0002 < np.mean(st.zscore(new, shifted, "lognormal") > 3) < 0.02
    assert st.ErrorStats.from_dict(shifted.to_dict()) == shifted  # kept in the card
    # scores whose log is normal keep the plain log
    normal = np.exp(rng.normal(-3, 0.5, 200))
    assert fit_error_stats(normal, shifted_log=True).log_shift == 0.0


def test_classify_says_when_the_bank_mixes_unlike_inputs(tmp_path, capsys):
    from PIL import Image

    from bank.cli import main

    rng = np.random.default_rng(0)
    reg = Registry(tmp_path / "reg")
    reg.register("0", PCAModel(n_components=4).fit(rng.random((40, 8, 8))))
    reg.register("photo", PCAModel(n_components=4).fit(rng.random((40, 32, 32, 3))))
    Image.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    assert main(["classify", str(tmp_path / "a.png"), "--registry", str(reg.root)]) == 0
    err = capsys.readouterr().err
    assert "mixes classes of unlike inputs" in err and "--classes" in err
    assert main(["classify", str(tmp_path / "a.png"), "--registry", str(reg.root), "--classes", "photo"]) == 0
    assert "mixes" not in capsys.readouterr().err


def test_classify_warns_of_a_class_ranked_on_a_few_held_out_images(tmp_path, capsys):
    """In a bank compared relative, a class whose kind of score no other class shares, fitted on a few
    images, ranks on a rough spread: classify says so, naming it, and not the classes of many."""
    from PIL import Image

    from bank.cli import main
    from bank.kinds.hog_ocsvm import HOGOCSVMModel

    rng = np.random.default_rng(0)
    reg = Registry(tmp_path / "reg")
    for c in ("a", "b"):
        reg.register(c, PCAModel(n_components=4).fit(rng.random((300, 16, 16))))
    reg.register("few", HOGOCSVMModel().fit(rng.random((20, 16, 16))))
    Image.fromarray((rng.random((16, 16)) * 255).astype(np.uint8)).save(tmp_path / "x.png")
    assert main(["classify", str(tmp_path / "x.png"), "--registry", str(reg.root)]) == 0
    err = capsys.readouterr().err
    assert "class 'few' is ranked beside the others" in err and "rests on 2 held-out images" in err
    assert "class 'a'" not in err and "class 'b'" not in err
    assert main(["classify", str(tmp_path / "x.png"), "--registry", str(reg.root), "--classes", "a,b"]) == 0
    assert "ranked beside" not in capsys.readouterr().err  # raw errors: no ranks by z
    assert main(["classify", str(tmp_path / "x.png"), "--registry", str(reg.root), "--classes", "few"]) == 0
    assert "ranked beside" not in capsys.readouterr().err  # one unit: one spread for all, no class favoured
