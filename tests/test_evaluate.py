"""The evaluation figures, on hand-made errors (no TensorFlow)."""

import numpy as np
import pytest

from bank.verdict import stats as st
from bank.verdict.fitting import fit_error_stats
from bank.demo import EXAMPLE_COLUMNS, example_rows, examples_of
from bank.reports.evaluate import evaluate, outlier_cut, past_each_quantile, rank_outliers
from bank.reports.presentation import describe_outliers, describe_rule, flag_tags, training_warnings
from bank.verdict.decision import decide


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
    assert f["foreign_classes"] == ["zebra"] and f["n_foreign_unknown"] == 1 and f["n_unknown"] == 0
    assert f["accuracy"] == 0.75
    a, b = f["per_class"]["a"], f["per_class"]["b"]
    assert a["false_reject"] == 0.0 and a["false_accept"] == 0.0  # a flags all three others
    assert b["false_reject"] == 0.0 and b["false_accept"] == pytest.approx(0.0)  # b flags a's two (z >= 4.5)
    assert a["auroc"] == 1.0 and b["auroc"] == pytest.approx(1.0)
    assert a["welch_t"] > 0
    assert f["confusion"]["columns"] == ["a", "b", "unknown"]
    # the verdict is the nearest class that accepts the image: row 3 is b's (a, nearer, rejects it)
    assert f["confusion"]["counts"] == [[2, 0, 0], [0, 2, 0]]
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
    s = fit_error_stats(np.linspace(0.0, 1.0, 501))
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


def test_the_rule_names_its_parts_distinctly():
    rule = describe_rule("complexity", 3.0, 0.2, 4.0)
    assert rule.startswith("complexity-corrected z of the error > 3, or margin > 0.2")
    assert "|input complexity z| > 4" in rule
    # one name, one quantity: "complexity z" alone never appears (only inside the two distinct names)
    assert rule.replace("complexity-corrected z", "").replace("input complexity z", "").count("complexity z") == 0
    assert describe_rule("lognormal", 2.5, None, None) == "lognormal z of the error > 2.5"
    assert "Gaussian z of the error > 3" in describe_rule("gaussian", 3.0, 0.2, None)
    assert st.METHOD_LABELS["complexity"] != st.INPUT_COMPLEXITY_LABEL


def test_flag_tags_name_the_tests_that_fired():
    errors = [[1.0, 1.9], [1.25, 1.0], [2.0, 1.0]]  # image 1: a by the margin only; image 2: a by its z and margin
    r = result_from(errors, STATS, margin=0.2)
    assert flag_tags(r, 0, 0) == [] and flag_tags(r, 1, 0) == ["margin"]
    assert flag_tags(r, 2, 0) == ["Gaussian z", "margin"]
    assert any("class 'b': error 20% lower; margin 0.22 > 0.2" in x for x in r.reasons(1, 0))


def test_the_demo_table_says_why_a_class_flags():
    r = result_from([[1.25, 1.0]], STATS, margin=0.2)  # a: z 2.5, fine alone, but b reconstructs it 20% better
    r.names = ["test #0 (digit b)"]
    rows = example_rows(examples_of(r, 1))
    assert len(rows) == 2 and all(len(row) == len(EXAMPLE_COLUMNS) for row in rows)
    by_class = {row[1]: row for row in rows}
    assert by_class["a"][-1] == "FLAG (margin)"
    assert by_class["b"][-1] == ""
    # a record from elsewhere (no flagged_by): the reasons' text, never a bare "FLAG"
    rec = r.records()[0]
    assert example_rows([rec])[0][-1].startswith("FLAG (another class fits it better (class 'b'")


def test_training_warnings_come_from_the_cards():
    class Det:
        def __init__(self, training):
            self.training_ = training

    dets = {"a": Det({"warnings": ["stopped early"]}), "b": Det({"warnings": []}), "c": Det({})}
    assert training_warnings(dets) == {"a": ["stopped early"]}


def test_outliers_say_why_and_what_to_try_when_few_pass_the_cut():
    s = fit_error_stats(np.linspace(0.0, 1.0, 1001))  # quantiles: 0.5 -> 0.5, 0.9 -> 0.9, ...
    errors = np.array([0.2, 0.6, 0.92, 0.96, 0.995, 5.0])
    past = past_each_quantile(errors, s)
    assert past == {"0.5": 5, "0.9": 4, "0.95": 3, "0.99": 2, "0.999": 1}
    before, after = describe_outliers("circle", 6, 1, 0.999, 0.999, 8, past, True)
    text = "\n".join(before + after)
    assert before[0].startswith("1 of 6 images is past the 0.999 quantile of the held-out errors of class 'circle'")
    assert "it is listed because its error is past the cut" in text
    assert "only 1 image is past the cut, fewer than --top 8; the montage shows it" in text
    assert "to see more, lower --quantile: 0.99 would list 2, 0.95 would list 3, 0.9 would list 4, 0.5 would list 5" \
        in text
    before, after = describe_outliers("circle", 6, 4, 0.9, 0.9, 2, past, True)
    assert after == ["the montage shows the worst 2 of the 4 (--top)"]
    before, after = describe_outliers("circle", 6, 0, 0.999, 0.999, 8, {"0.5": 0, "0.999": 0}, False)
    assert "no image is past the cut" in after[0] and "no lower quantile" in after[1]


def test_auroc_says_what_others_it_counts_foreign_images_among():
    # a, b and a foreign image that class a scores like its own: counted among a's "others" it lowers a's AUROC
    errors = [[1.0, 3.0], [1.1, 2.9], [3.0, 1.0], [2.9, 1.1], [1.05, 9.0]]
    f = evaluate(result_from(errors, STATS), ["a", "a", "b", "b", "zebra"])
    a = f["per_class"]["a"]
    assert a["auroc_known"] == 1.0 and a["auroc"] < 1.0
    assert f["auroc_known_mean"] == pytest.approx(np.mean([a["auroc_known"], f["per_class"]["b"]["auroc_known"]]))
    g = evaluate(result_from(errors[:4], STATS), ["a", "a", "b", "b"])
    assert g["per_class"]["a"]["auroc_known"] == g["per_class"]["a"]["auroc"]
