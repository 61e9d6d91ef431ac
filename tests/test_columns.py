"""The bank's statistics as columns give what the per-class functions give: the verdict, taken over
every class at once, is the one the per-class maths defines."""

import numpy as np
import pytest

from bank.verdict import stats as st
from bank.verdict.columns import StatsColumns, margins, pooled_spread
from bank.verdict.conformal import conformal_p_value
from bank.verdict.decision import decide
from bank.verdict.fitting import fit_error_stats


def _bank(rng):
    """Six classes fitted every way a bank holds: with and without the complexity part, a shifted log,
    a tail fit, a card without its held-out scores, a class of three held-out images."""
    out = []
    for k in range(6):
        n = 3 if k == 5 else 80
        e = rng.lognormal(np.log(0.01 * (k + 1)), 0.3 + 0.05 * k, n)
        if k == 2:  # scores crowding at 0 with a tail, as a sure network's: a shifted log fit
            e = np.concatenate([rng.exponential(1e-4, 60), rng.lognormal(np.log(0.05), 0.5, 20)])
        cx = rng.uniform(2, 5, n)
        s = fit_error_stats(e, None if k in (1, 5) else cx, shifted_log=k == 2, tail_spread=0.975 if k == 3 else None)
        if k == 4:
            s = st.ErrorStats.from_dict({key: v for key, v in s.to_dict().items() if key != "calibration_errors"})
        out.append(s)
    return out


@pytest.mark.parametrize("method", st.STATS_METHODS)
def test_columns_equal_the_per_class_functions(method):
    rng = np.random.default_rng(0)
    stats = _bank(rng)
    errors = rng.lognormal(np.log(0.03), 1.0, (9, 6))
    errors[0, 0] = stats[0].calibration[10]  # a tie with a held-out score counts as at least as high
    cx = rng.uniform(0.5, 8, (9, 6))  # some past the clamp of the complexity line
    cols = StatsColumns.of(stats)
    for complexity in (cx, None):
        got = cols.zscore(errors, method, complexity)
        for k, s in enumerate(stats):
            want = st.zscore(errors[:, k], s, method, None if complexity is None else complexity[:, k])
            np.testing.assert_allclose(got[:, k], want, rtol=1e-12, atol=1e-12)
        assert cols.methods(method, complexity is not None) == [
            st.effective_method(s, method, complexity is not None) for s in stats]
    cz = cols.complexity_z(cx)
    p = cols.conformal(errors)
    for k, s in enumerate(stats):
        np.testing.assert_allclose(cz[:, k], st.complexity_z(cx[:, k], s), rtol=1e-12)
        want = conformal_p_value(errors[:, k], s.calibration) if s.calibration else np.full(9, np.nan)
        np.testing.assert_array_equal(p[:, k], want)
    assert p[0, 0] == (1 + 80 - 10) / 81


def test_margins_compare_each_class_with_the_best_other_that_accepts():
    rng = np.random.default_rng(1)
    ranked = rng.normal(size=(50, 7))
    ranked[3, :3] = ranked[3, 0]  # ties
    accepts = rng.random((50, 7)) > 0.3
    got = margins(ranked, accepts)
    for i in range(50):
        for k in range(7):
            others = [ranked[i, j] for j in range(7) if j != k and accepts[i, j]]
            if others:
                assert got[i, k] == pytest.approx(ranked[i, k] - min(others))
            else:
                assert np.isnan(got[i, k])
    np.testing.assert_allclose(margins(ranked[:, :2]), ranked[:, :2] - ranked[:, 1::-1])


def test_classes_of_one_unit_share_their_spread_and_no_unit_borrows_another_s():
    spread = pooled_spread(np.array([0.3, 0.4, 0.04, 0.001]), ["mse", "mse", "hog", "other"])
    np.testing.assert_allclose(spread, [np.sqrt((0.09 + 0.16) / 2)] * 2 + [0.04, 0.001])


def test_decide_reads_columns_made_once_as_it_reads_the_statistics():
    rng = np.random.default_rng(2)
    stats = _bank(rng)
    units = ["mse", "mse", "hog", "hog", "mse", "other"]
    errors = rng.lognormal(np.log(0.03), 1.0, (12, 6))
    cx = rng.uniform(1, 6, (12, 6))
    a = decide(errors, list("abcdef"), stats, complexity=cx, compare="relative", units=units)
    b = decide(errors, list("abcdef"), StatsColumns.of(stats, units), complexity=cx, compare="relative")
    for field in ("z", "test_z", "p_value", "margin", "rank", "conformal_p", "complexity_z"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.labels == b.labels and a.methods == b.methods
    spread = {u: np.sqrt(np.mean([s.log_std**2 for s, v in zip(stats, units) if v == u])) for u in units}
    centre = {u: np.mean([s.log_mean for s, v in zip(stats, units) if v == u]) for u in units}
    plain, shifted = np.log(errors), np.log(errors + [s.log_shift for s in stats])  # class 2's fit is shifted
    assert stats[2].log_shift > 0
    np.testing.assert_allclose(a.rank, (plain - [centre[u] for u in units]) / [spread[u] for u in units])
    # a unit fitted per class (a kernel width) centres each class on its own log mean, its log as its fit takes it
    own = [False, False, True, True, False, False]
    c = decide(errors, list("abcdef"), stats, compare="relative", units=units, per_class=own)
    mid = [s.log_mean if o else centre[u] for s, u, o in zip(stats, units, own)]
    np.testing.assert_allclose(c.rank, (np.where(own, shifted, plain) - mid) / [spread[u] for u in units])
    cols = StatsColumns.of(stats, units, own)
    assert decide(errors, list("abcdef"), cols, compare="relative", per_class=own).labels == c.labels
    with pytest.raises(ValueError, match="per_class"):
        decide(errors, list("abcdef"), cols, compare="relative", per_class=[False] * 6)
    raw = decide(errors, list("abcdef"), stats, compare="raw")
    np.testing.assert_allclose(raw.margin, margins(np.log(errors), ~raw.flag_error))  # raw: plain logs, no shift


def test_a_matrix_of_the_wrong_width_is_refused_not_broadcast():
    rng = np.random.default_rng(4)
    stats = _bank(rng)
    cols = StatsColumns.of(stats, ["a"] * 6)
    for call in (cols.zscore, cols.conformal, cols.relative, cols.complexity_z):
        with pytest.raises(ValueError, match=r"expected shape \(N, 6\)"):
            call(np.full((3, 1), 0.02))
    with pytest.raises(ValueError, match="units"):
        decide(np.full((1, 6), 0.02), list("abcdef"), cols, units=["b"] * 6)


def test_within_a_unit_the_relative_ranking_is_the_raw_one():
    """Classes whose raw scores compare (one unit, none fitted per class) keep the raw argmin among
    themselves however the bank compares: a class of another kind beside them does not reorder them."""
    rng = np.random.default_rng(5)
    stats = [fit_error_stats(rng.lognormal(np.log(m), s, 60)) for m, s in [(0.01, 0.2), (0.05, 0.6), (0.02, 0.4)]]
    stats.append(fit_error_stats(rng.lognormal(np.log(3.0), 0.05, 60)))  # another kind, another unit
    errors = rng.lognormal(np.log(0.03), 1.0, (300, 4))
    rel = decide(errors, list("abcd"), stats, compare="relative", units=["mse"] * 3 + ["hog"])
    np.testing.assert_array_equal(np.argmin(rel.rank[:, :3], axis=1), np.argmin(errors[:, :3], axis=1))
