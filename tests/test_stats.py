"""The statistics maths, without TensorFlow."""

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as hs

from bank.verdict import stats as st
from bank.verdict.columns import margins
from bank.verdict.fitting import fit_error_stats


def test_fit_gives_mean_sample_std_n_and_quantiles():
    errs = np.array([0.01, 0.02, 0.03, 0.04, 0.05])
    s = fit_error_stats(errs)
    assert s.mean == pytest.approx(0.03)
    assert s.std == pytest.approx(np.std(errs, ddof=1))
    assert s.n == 5
    assert set(s.quantiles) == {"0.5", "0.9", "0.95", "0.99", "0.999"}
    assert s.quantiles["0.5"] == pytest.approx(0.03)


def test_identical_errors_give_a_floored_std_and_finite_z():
    s = fit_error_stats(np.full(10, 0.02))
    assert s.std > 0
    assert np.isfinite(st.zscore(np.array([0.5]), s)).all()


@pytest.mark.parametrize("errs, match", [([0.1], "at least 2"), ([], "at least 2"), ([0.1, np.nan], "NaN")])
def test_fit_rejects_too_few_or_non_finite_errors(errs, match):
    with pytest.raises(ValueError, match=match):
        fit_error_stats(np.array(errs))


def test_score_is_one_at_the_mean_and_exp_of_minus_half_z_squared():
    s = st.ErrorStats(mean=0.02, std=0.005, n=100)
    z = st.zscore(np.array([0.02, 0.025, 0.01]), s)
    np.testing.assert_allclose(z, [0.0, 1.0, -2.0])
    np.testing.assert_allclose(st.gaussian_score(z), [1.0, math.exp(-0.5), math.exp(-2.0)])


def test_upper_p_value_is_the_normal_tail():
    np.testing.assert_allclose(st.upper_p_value(np.array([0.0, 1.959963984540054, -10.0])), [0.5, 0.025, 1.0], atol=1e-12)


@pytest.mark.parametrize(
    "z, threshold, flagged",
    [
        (3.0, 3.0, False),  # exactly at the threshold: normal
        (3.0001, 3.0, True),
        (-5.0, 3.0, False),  # far below the mean: never flags
        (1.5, 1.0, True),
    ],
)
def test_flag_is_one_sided_and_strict(z, threshold, flagged):
    assert bool(st.flag(np.array([z]), threshold)[0]) is flagged


@pytest.mark.parametrize("threshold", [-1.0, 0.0, float("nan"), float("inf")])
def test_flag_rejects_bad_thresholds(threshold):
    with pytest.raises(ValueError, match="threshold"):
        st.flag(np.zeros(1), threshold)


@pytest.mark.parametrize(
    "data, match",
    [
        ({"mean": 0.1, "std": 0.01}, "missing"),
        ({"mean": "x", "std": 0.01, "n": 5}, "stats.mean"),
        ({"mean": 0.1, "std": 0.0, "n": 5}, "stats.std"),
        ({"mean": 0.1, "std": 0.01, "n": 1}, "stats.n"),
        ({"mean": 0.1, "std": 0.01, "n": 5.5}, "stats.n"),
        ({"mean": float("nan"), "std": 0.01, "n": 5}, "stats.mean"),
        ({"mean": 0.1, "std": 0.01, "n": 5, "quantiles": {"0.5": None}}, "quantiles"),
        ([], "expected an object"),
    ],
)
def test_from_dict_names_the_bad_field(data, match):
    with pytest.raises(ValueError, match=match):
        st.ErrorStats.from_dict(data)


@given(hs.lists(hs.floats(min_value=0.0, max_value=10.0, allow_nan=False), min_size=2, max_size=200))
def test_fit_round_trips_through_json_form(errs):
    s = fit_error_stats(np.array(errs))
    assert st.ErrorStats.from_dict(s.to_dict()) == s
    assert s.std > 0
    assert min(errs) - 1e-12 <= s.quantiles["0.5"] <= max(errs) + 1e-12


def test_stats_and_package_import_without_tensorflow():
    code = "import bank, bank.verdict.stats, bank.answering.router, bank.registry.store, bank.cli, sys; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_lognormal_z_is_the_z_of_the_log_error():
    rng = np.random.default_rng(0)
    errs = np.exp(rng.normal(-4.0, 0.5, 5000))
    s = fit_error_stats(errs)
    assert s.log_mean == pytest.approx(-4.0, abs=0.03) and s.log_std == pytest.approx(0.5, abs=0.02)
    e = np.exp(-4.0 + 3 * s.log_std)
    assert st.zscore(np.array([e]), s, "lognormal")[0] == pytest.approx(3.0, abs=0.1)
    # on lognormal errors, lognormal z > 3 rejects about 0.13% of normals; the Gaussian z > 3 far more
    fresh = np.exp(rng.normal(-4.0, 0.5, 20000))
    assert np.mean(st.zscore(fresh, s, "lognormal") > 3) < 0.003
    assert np.mean(st.zscore(fresh, s, "gaussian") > 3) > 0.01
    with pytest.raises(ValueError, match="method"):
        st.zscore(fresh, s, "cauchy")


def test_cards_without_a_log_fit_get_the_moment_matched_lognormal():
    s = st.ErrorStats.from_dict({"mean": 0.02, "std": 0.01, "n": 50})
    sigma2 = math.log(1 + 0.25)
    assert s.log_std == pytest.approx(math.sqrt(sigma2))
    assert s.log_mean == pytest.approx(math.log(0.02) - sigma2 / 2)
    assert st.ErrorStats.from_dict(s.to_dict()) == s


def test_margin_is_log_error_minus_the_best_other_log_error():
    e = np.array([[0.01, 0.02, 0.04], [0.05, 0.05, 0.10]])
    m = margins(np.log(e))
    np.testing.assert_allclose(m[0], [np.log(0.5), np.log(2), np.log(4)])
    np.testing.assert_allclose(m[1], [0.0, 0.0, np.log(2)])  # a tie: neither is worse than the other
    assert np.isnan(margins(np.array([[0.1]]))).all()
    a = st.anomaly(np.array([[1.5, 0.0]]), np.array([[-1.0, 0.3]]), 3.0, 0.2)
    np.testing.assert_allclose(a, [[0.5, 1.5]])
    with pytest.raises(ValueError, match="margin"):
        st.check_margin(0.0)


def test_the_complexity_fit_takes_out_what_complexity_explains():
    """Errors that rise with input complexity: the corrected z sees only what is left."""
    rng = np.random.default_rng(0)
    cx = np.exp(rng.normal(0.5, 0.4, 4000))
    errors = np.exp(-5 + 1.5 * (np.log(cx) - 0.5) + rng.normal(0, 0.1, cx.size))
    s = fit_error_stats(errors, cx)
    assert s.complexity_slope == pytest.approx(1.5, abs=0.05)
    assert s.residual_std == pytest.approx(0.1, rel=0.1) and s.log_std > 0.5
    # A simple input with its own ordinary error: plain lognormal calls it fine; corrected, it is far too high.
    simple, err = np.array([np.exp(-0.7)]), np.array([np.exp(-5.0)])
    assert st.zscore(err, s, "lognormal")[0] < 0.5
    assert st.zscore(err, s, "complexity", simple)[0] > 10
    # Far outside the fitted range the line is not extrapolated: held at 3 standard deviations.
    far = st.zscore(err, s, "complexity", np.array([1e-6]))[0]
    edge = st.zscore(err, s, "complexity", np.array([np.exp(s.complexity_mean - 3 * s.complexity_std)]))[0]
    assert far == pytest.approx(edge)
    assert st.complexity_z(simple, s)[0] == pytest.approx(-3.0, abs=0.2)
    assert st.error_cut(s, 3.0, "complexity") == pytest.approx(np.exp(s.log_mean + 3 * s.residual_std))
    back = st.ErrorStats.from_dict(s.to_dict())
    assert back == s


def test_complexity_falls_back_to_lognormal_for_old_fits_and_bad_parts_are_refused():
    s = fit_error_stats(np.linspace(0.01, 0.03, 50))
    assert not s.has_complexity and "complexity_mean" not in s.to_dict()
    e = np.array([0.05])
    np.testing.assert_allclose(st.zscore(e, s, "complexity", np.array([2.0])), st.zscore(e, s, "lognormal"))
    assert np.isnan(st.complexity_z(np.array([2.0]), s)).all()
    good = fit_error_stats(np.linspace(0.01, 0.03, 50), np.linspace(1, 2, 50)).to_dict()
    with pytest.raises(ValueError, match="stats.residual_std"):
        st.ErrorStats.from_dict({**good, "residual_std": None})
    with pytest.raises(ValueError, match="stats.complexity_std"):
        st.ErrorStats.from_dict({**good, "complexity_std": -1.0})
    with pytest.raises(ValueError, match="complexity"):
        fit_error_stats(np.linspace(0.01, 0.03, 50), np.zeros(50))


def test_complexity_of_images_orders_blank_digits_noise():
    from bank.io.images import complexity

    rng = np.random.default_rng(0)
    blank, noise = np.zeros((1, 28, 28, 1)), rng.random((1, 28, 28, 1))
    stroke = np.zeros((1, 28, 28, 1))
    stroke[0, 5:23, 12:16] = 1.0
    c = complexity(np.concatenate([blank, stroke, noise]))
    assert c[0] < c[1] < c[2] and c[2] > 7 and c[0] < 0.2


def test_a_few_held_out_images_give_no_complexity_line_and_z_stays_sane():
    e = np.array([0.01, 0.02, 0.015])
    few = fit_error_stats(e, np.array([1.0, 2.0, 1.5]))
    assert few.has_complexity and few.complexity_slope == 0.0  # fewer than 30 points: no line
    np.testing.assert_allclose(st.zscore(e, few, "complexity", np.ones(3)), st.zscore(e, few, "lognormal"))
    rng = np.random.default_rng(1)
    cx = np.exp(rng.normal(0, 0.3, 40))
    exact = fit_error_stats(np.exp(-5 + 2 * np.log(cx)), cx)  # errors exactly on a line
    assert exact.residual_std >= 0.1 * exact.log_std  # floored: a perfect line does not make z explode
    assert abs(st.zscore(np.array([np.exp(-5.0)]), exact, "complexity", np.array([1.1]))[0]) < 10


def test_a_partial_complexity_part_is_refused():
    with pytest.raises(ValueError, match="complexity part needs all"):
        st.ErrorStats(mean=0.01, std=0.005, n=10, complexity_mean=1.0)
    good = fit_error_stats(np.linspace(0.01, 0.03, 50), np.linspace(1, 2, 50)).to_dict()
    with pytest.raises(ValueError, match="need log_mean"):
        st.ErrorStats.from_dict({k: v for k, v in good.items() if k not in ("log_mean", "log_std")})


def test_a_tail_fit_flags_a_right_leaning_class_as_often_as_promised():
    """Held-out log scores with a long upper tail (ae-hog's) flag more than 0.13% of the class's own images at
    z > 3 under a mean and deviation; the tail fit (centre at the median, spreads from the 0.975 quantile)
    brings that down, never narrows a spread, and leaves foreign scores far past the tail flagged."""
    from bank.errors import InputError
    from bank.verdict.fitting import fit_error_stats

    rng = np.random.default_rng(0)
    cx = np.exp(rng.normal(0, 0.3, 20600))
    e = np.exp(rng.gumbel(0, 0.5, 20600)) * cx**0.5  # right-leaning logs that follow the complexity
    held, new = slice(0, 600), slice(600, None)
    plain = fit_error_stats(e[held], cx[held])
    tail = fit_error_stats(e[held], cx[held], tail_spread=0.975)
    z_plain = st.zscore(e[new], plain, "complexity", cx[new])
    z_tail = st.zscore(e[new], tail, "complexity", cx[new])
    assert np.mean(z_plain > 3) > 0.006 and np.mean(z_tail > 3) < 0.7 * np.mean(z_plain > 3)
    assert abs(np.median(z_tail)) < 0.08 < abs(np.median(z_plain))
    assert tail.residual_std >= plain.residual_std and tail.log_std >= plain.log_std
    assert tail.complexity_std >= plain.complexity_std
    far = st.zscore(np.full(3, np.exp(6.0)), tail, "complexity", np.ones(3))
    assert np.all(far > 3)
    normal = np.exp(rng.normal(0, 0.5, 600))  # a symmetric class: about the same fit either way
    a, b = fit_error_stats(normal), fit_error_stats(normal, tail_spread=0.975)
    assert abs(a.log_mean - b.log_mean) < 0.05 and b.log_std < 1.1 * a.log_std
    with pytest.raises(InputError, match="tail_spread"):
        fit_error_stats(normal, tail_spread=0.3)
