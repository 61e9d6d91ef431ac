"""The statistics maths, without TensorFlow."""

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as hs

from bank import stats as st


def test_fit_gives_mean_sample_std_n_and_quantiles():
    errs = np.array([0.01, 0.02, 0.03, 0.04, 0.05])
    s = st.fit_error_stats(errs)
    assert s.mean == pytest.approx(0.03)
    assert s.std == pytest.approx(np.std(errs, ddof=1))
    assert s.n == 5
    assert set(s.quantiles) == {"0.5", "0.9", "0.95", "0.99", "0.999"}
    assert s.quantiles["0.5"] == pytest.approx(0.03)


def test_identical_errors_give_a_floored_std_and_finite_z():
    s = st.fit_error_stats(np.full(10, 0.02))
    assert s.std > 0
    assert np.isfinite(st.zscore(np.array([0.5]), s)).all()


@pytest.mark.parametrize("errs, match", [([0.1], "at least 2"), ([], "at least 2"), ([0.1, np.nan], "NaN")])
def test_fit_rejects_too_few_or_non_finite_errors(errs, match):
    with pytest.raises(ValueError, match=match):
        st.fit_error_stats(np.array(errs))


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
    s = st.fit_error_stats(np.array(errs))
    assert st.ErrorStats.from_dict(s.to_dict()) == s
    assert s.std > 0
    assert min(errs) - 1e-12 <= s.quantiles["0.5"] <= max(errs) + 1e-12


def test_stats_and_package_import_without_tensorflow():
    code = "import bank, bank.stats, bank.router, bank.registry, bank.cli, sys; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_lognormal_z_is_the_z_of_the_log_error():
    rng = np.random.default_rng(0)
    errs = np.exp(rng.normal(-4.0, 0.5, 5000))
    s = st.fit_error_stats(errs)
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
    m = st.margins(e)
    np.testing.assert_allclose(m[0], [np.log(0.5), np.log(2), np.log(4)])
    np.testing.assert_allclose(m[1], [0.0, 0.0, np.log(2)])  # a tie: neither is worse than the other
    assert np.isnan(st.margins(np.array([[0.1]]))).all()
    a = st.anomaly(np.array([[1.5, 0.0]]), np.array([[-1.0, 0.3]]), 3.0, 0.2)
    np.testing.assert_allclose(a, [[0.5, 1.5]])
    with pytest.raises(ValueError, match="margin"):
        st.check_margin(0.0)
