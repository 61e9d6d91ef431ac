"""The router: same numbers as each model alone, one call per spec, verdicts."""

import numpy as np
import pytest

from bank import Router
from bank.verdict import stats as st
from bank.io.images import complexity
from bank.io.inputs import prepare
from conftest import tiny_detector


def test_router_equals_each_model_alone(bank_registry, digits):
    images, _ = digits
    test = images[1400:1460]
    router = Router.from_registry(bank_registry)
    assert router.classes == ["0", "1", "7"]
    res = router.score(test)
    for k, c in enumerate(router.classes):
        det = bank_registry.load_detector(c)
        np.testing.assert_allclose(res.errors[:, k], det.reconstruction_error(test), rtol=1e-5)
        # the bank stacks its dense classes (bank.nets.stacked), the model alone runs LiteRT: the errors agree to
        # float32 rounding, about 1e-7 of them, so a z near 0 to about 1e-6
        np.testing.assert_allclose(res.test_z[:, k], det.zscore(test), rtol=1e-5, atol=1e-5)  # complexity
        s, cx = det.stats_, complexity(prepare(test, det.spec_))
        assert s.has_complexity
        np.testing.assert_allclose(res.complexity_z[:, k], (np.log(cx) - s.complexity_mean) / s.complexity_std)
        residual = np.log(res.errors[:, k]) - s.log_mean - s.complexity_slope * (np.log(cx) - s.complexity_mean)
        np.testing.assert_allclose(res.test_z[:, k], residual / s.residual_std, rtol=1e-5, atol=1e-9)
        det.method = "gaussian"
        np.testing.assert_allclose(res.z[:, k], det.zscore(test), rtol=1e-5, atol=1e-5)  # the seeds' z
    np.testing.assert_allclose(res.score, np.exp(-res.z**2 / 2))
    np.testing.assert_allclose(res.p_value, st.upper_p_value(res.test_z))
    log_e = np.log(res.errors)
    own = (res.test_z > 3.0) | (np.abs(res.complexity_z) > 4.0)  # each class's own tests
    accepting = np.where(res.test_z > 3.0, np.inf, log_e)  # the margin: the other classes whose error accepts it
    best_other = np.stack([np.delete(accepting, k, 1).min(1) for k in range(3)], 1)
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(res.margin, np.where(np.isinf(best_other), np.nan, log_e - best_other))
    assert (res.flags == (own | (res.margin > 0.2))).all()
    seeds = Router.from_registry(bank_registry, method="gaussian", margin=None, complexity_threshold=None).score(test)
    assert (seeds.flags == (seeds.z > 3.0)).all()  # the seeds' rule, still available


def test_argmin_classifies_held_out_digits(bank_registry, digits):
    images, labels = digits
    mask = np.isin(labels[1400:], [0, 1, 7])
    test, truth = images[1400:][mask], labels[1400:][mask]
    nearest = Router.from_registry(bank_registry).score(test).nearest
    assert np.mean(np.array(nearest, dtype=int) == truth) >= 0.9


def test_single_image_scores_as_in_a_batch(bank_registry, digits):
    images, _ = digits
    router = Router.from_registry(bank_registry)
    batch = router.errors(images[1400:1432])
    one = router.errors(images[1405:1406])
    np.testing.assert_allclose(one[0], batch[5], rtol=1e-5)


def test_classes_with_different_specs_each_get_their_own_size(digits, bank_registry, tmp_path):
    images, labels = digits
    from bank import InputSpec

    big = tiny_detector(images[labels == 3][:80], spec=InputSpec(12, 12, "gray"), epochs=2)
    dets = {c: bank_registry.load_detector(c) for c in bank_registry.classes()}
    router = Router({**dets, "3@12": big})
    assert len(router.groups) == 2
    odd = [np.random.default_rng(0).random((20, 9, 3), dtype=np.float32)]  # any size, colour
    err = router.errors(odd)
    assert err.shape == (1, 4) and np.isfinite(err).all()
    np.testing.assert_allclose(router.errors(img for img in odd), err)  # a generator is read once, for both specs
    np.testing.assert_allclose(err[0, 3], big.reconstruction_error(odd)[0], rtol=1e-5)

    from bank.reports.report import write_report  # a report over classes of different sizes draws them side by side

    mask = np.isin(labels[1400:], [0, 1, 3, 7])
    truth = ["3@12" if t == 3 else str(t) for t in labels[1400:][mask]]
    f = write_report(tmp_path, router, images[1400:][mask], truth, [f"#{i}" for i in range(len(truth))])
    assert (tmp_path / "montage_sample.png").exists() and f["per_class"]["3@12"]["n_own"] == truth.count("3@12")


def test_unknown_when_every_class_flags(bank_registry, digits):
    images, _ = digits
    router = Router.from_registry(bank_registry, threshold=3.0)
    noise = np.random.default_rng(1).random((5, 8, 8), dtype=np.float32)
    res = router.score(np.concatenate([images[1400:1403], noise]), names=list("abcdefgh"))
    assert res.unknown[3:].all()
    assert res.labels[3:] == ["unknown"] * 5
    rec = res.records()[3]
    assert rec["label"] is None and rec["unknown"] is True and rec["nearest"] in router.classes
    assert set(rec["classes"]["0"]) == {"error", "z", "score", "test_z", "method", "p_value", "conformal_p_value",
                                           "margin", "complexity_z", "flag", "reasons"}
    assert rec["classes"]["0"]["method"] == "complexity"
    assert any("error too high" in r for c in rec["classes"].values() for r in c["reasons"])


def test_router_refuses_an_empty_bank_and_bad_input(bank_registry):
    with pytest.raises(ValueError, match="at least one class"):
        Router({})
    router = Router.from_registry(bank_registry, classes=["1"])
    with pytest.raises(ValueError, match="shape"):
        router.errors(np.zeros((2, 2, 4, 4, 1)))  # five axes: no image
    with pytest.raises(ValueError, match="threshold"):
        Router.from_registry(bank_registry, classes=["1"], threshold=-1)


def test_blank_constant_and_noise_are_unknown_and_digits_still_classified(bank_registry, digits):
    """The open set: inputs that reconstruct too well (blank, constant) or too badly (noise) are no class."""
    images, labels = digits
    rng = np.random.default_rng(3)
    foreign = {
        "blank": np.zeros((4, 8, 8), np.float32),
        "constant": np.repeat(np.array([0.1, 0.4, 0.7, 1.0], np.float32), 64).reshape(4, 8, 8),
        "noise": rng.random((20, 8, 8), dtype=np.float32),
    }
    router = Router.from_registry(bank_registry)
    for name, x in foreign.items():
        res = router.score(x)
        assert res.unknown.all(), (name, res.labels)
        for i in range(len(x)):  # every class says why
            assert all(res.reasons(i, k) for k in range(len(router.classes)))
    mask = np.isin(labels[1400:], [0, 1, 7])
    test, truth = images[1400:][mask], labels[1400:][mask]
    res = router.score(test)
    assert np.mean(np.array(res.nearest, dtype=int) == truth) >= 0.9
    assert np.mean(res.unknown) <= 0.1
    for name in ("blank", "constant"):  # far simpler than any digit: the complexity test says so in every class
        res = router.score(foreign[name])
        assert res.flag_complexity.all() and (res.complexity_z < -4).all(), name


def test_a_class_fitted_before_complexity_falls_back_and_says_so(bank_registry, digits):
    import dataclasses

    images, _ = digits
    dets = {c: bank_registry.load_detector(c) for c in ("0", "1")}
    dets["1"].stats_ = dataclasses.replace(dets["1"].stats_, complexity_mean=None, complexity_std=None,
                                           complexity_slope=None, residual_std=None)
    res = Router(dets).score(np.concatenate([images[1400:1404], np.zeros((1, 8, 8), np.float32)]))
    assert res.methods == ["complexity", "lognormal"]
    assert np.isnan(res.complexity_z[:, 1]).all() and not res.flag_complexity[:, 1].any()
    np.testing.assert_allclose(res.test_z[:, 1], st.zscore(res.errors[:, 1], dets["1"].stats_, "lognormal"))
    rec = res.records()[4]
    assert rec["classes"]["1"]["method"] == "lognormal" and rec["classes"]["1"]["complexity_z"] is None
    assert res.flag_complexity[4, 0]  # the class with the fit still says the blank is too simple
