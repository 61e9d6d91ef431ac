"""The evaluation figures, on hand-made errors (no TensorFlow)."""

import numpy as np
import pytest

from bank import stats as st
from bank.evaluate import evaluate, outlier_cut, rank_outliers
from bank.router import decide


def result_from(errors, stats, threshold=3.0, method="gaussian", margin=None):
    return decide(np.asarray(errors, dtype=float), ["a", "b"], stats, threshold=threshold, method=method,
                  margin=margin)


STATS = [st.ErrorStats(mean=1.0, std=0.1, n=100), st.ErrorStats(mean=2.0, std=0.2, n=100)]


def test_figures_of_a_small_known_case():
    errors = [
        [1.0, 3.0],   # a, right, b flags it
        [1.1, 2.9],   # a, right
        [1.5, 2.1],   # b: argmin says a (wrong); class a flags it (z=5), b accepts it
        [2.0, 1.9],   # b: argmin b; a flags, b accepts
        [9.0, 9.0],   # foreign: every class flags, unknown
    ]
    f = evaluate(result_from(errors, STATS), ["a", "a", "b", "b", "zebra"])
    assert f["n_known"] == 4 and f["n_foreign"] == 1 and f["foreign_unknown_rate"] == 1.0
    assert f["accuracy"] == 0.75
    a, b = f["per_class"]["a"], f["per_class"]["b"]
    assert a["false_reject"] == 0.0 and a["false_accept"] == 0.0  # a flags all three others
    assert b["false_reject"] == 0.0 and b["false_accept"] == pytest.approx(0.0)  # b flags a's two (z >= 4.5)
    assert a["auroc"] == 1.0 and b["auroc"] == pytest.approx(1.0)
    assert a["welch_t"] > 0
    assert f["confusion"]["columns"] == ["a", "b", "unknown"]
    assert f["confusion"]["counts"] == [[2, 0, 0], [1, 1, 0]]
    assert f["auroc_mean"] == pytest.approx(1.0)


def test_false_accept_and_reject_count_flags_at_the_threshold():
    # class a: own errors straddle its cut (1.3); other-class errors below it are accepted
    errors = [[1.0, 5.0], [1.4, 5.0], [1.2, 1.0], [2.0, 1.0]]
    f = evaluate(result_from(errors, STATS), ["a", "a", "b", "b"])
    assert f["per_class"]["a"]["false_reject"] == 0.5
    assert f["per_class"]["a"]["false_accept"] == 0.5
    assert f["per_class"]["a"]["auroc"] == 0.75


def test_truth_must_match_and_touch_the_bank():
    r = result_from([[1.0, 2.0]], STATS)
    with pytest.raises(ValueError, match="expected 1 labels"):
        evaluate(r, ["a", "b"])
    with pytest.raises(ValueError, match="no image belongs to a class of the bank"):
        evaluate(r, ["zebra"])


def test_outlier_cut_uses_the_stored_quantile_and_warns_when_n_is_small():
    s = st.fit_error_stats(np.linspace(0.0, 1.0, 501))
    cut, warning = outlier_cut(s, 0.99)
    assert cut == pytest.approx(0.99) and warning is None
    cut, warning = outlier_cut(s, 0.999)
    assert "501 held-out errors" in warning
    with pytest.raises(ValueError, match="0.5, 0.9, 0.95, 0.99, 0.999; got 0.97"):
        outlier_cut(s, 0.97)


def test_rank_outliers_worst_first():
    assert rank_outliers(np.array([0.1, 5.0, 0.2, 3.0, 9.0]), 1.0).tolist() == [4, 1, 3]
    assert rank_outliers(np.array([0.1]), 1.0).tolist() == []


def test_the_margin_test_flags_what_another_class_explains_better():
    errors = [[1.0, 1.9], [1.25, 1.0], [0.9, 2.0]]  # image 1: fine for a alone (z 2.5), but b reconstructs it 25% better
    plain = evaluate(result_from(errors, STATS), ["a", "b", "a"])
    bank = evaluate(result_from(errors, STATS, margin=0.2), ["a", "b", "a"])
    assert plain["per_class"]["a"]["false_accept"] == 1.0  # alone, a accepts the b image
    assert bank["per_class"]["a"]["false_accept"] == 0.0   # in the bank, b explains it: a flags it
    assert bank["margin"] == 0.2 and bank["per_class"]["a"]["auroc"] == 1.0
    assert bank["per_class"]["a"]["auroc_error"] == 1.0


def test_a_one_class_bank_has_no_margin_and_flags_on_z_alone():
    r = decide(np.array([[1.0], [5.0]]), ["a"], STATS[:1], method="gaussian")
    assert np.isnan(r.margin).all() and r.flags.tolist() == [[False], [True]]
    assert r.records()[0]["classes"]["a"]["margin"] is None
