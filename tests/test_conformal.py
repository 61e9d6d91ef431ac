"""Distribution-free p-values and false-discovery control: the maths, the card, and `bank outliers --fdr`."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from bank.verdict import stats as st
from bank.verdict.fitting import fit_error_stats
from bank.verdict.conformal import benjamini_hochberg, conformal_p_value, fewest_findable
from bank.verdict.decision import decide
from bank.errors import InputError


def test_conformal_p_value_counts_the_held_out_scores_at_least_as_high():
    cal = [0.1, 0.2, 0.2, 0.4]
    p = conformal_p_value(np.array([0.05, 0.2, 0.3, 0.4, 9.0, np.nan]), cal)
    np.testing.assert_allclose(p[:5], [5 / 5, 4 / 5, 2 / 5, 2 / 5, 1 / 5])
    assert np.isnan(p[5])


def test_conformal_p_values_are_valid_whatever_the_distribution():
    rng = np.random.default_rng(0)
    for draw in (lambda n: rng.lognormal(0, 2, n), lambda n: rng.pareto(1.5, n), lambda n: rng.integers(0, 3, n)):
        shares = []
        for _ in range(200):  # a fresh class each time: its held-out scores and its new images, exchangeable
            cal, new = draw(99), draw(50)
            shares.append(np.mean(conformal_p_value(new, cal) <= 0.1))
        assert np.mean(shares) <= 0.1 + 0.01  # P(p <= a) <= a, even with ties (integers) and heavy tails


def test_benjamini_hochberg_steps_up():
    p = np.array([0.01, 0.04, 0.03, 0.2, 0.5])
    assert benjamini_hochberg(p, 0.1).tolist() == [True, True, True, False, False]
    assert benjamini_hochberg(np.array([0.03, 0.03, 0.03]), 0.05).all()  # k = 3: 0.03 <= 0.05
    assert not benjamini_hochberg(np.array([0.02, 0.5, np.nan]), 0.05).any()  # 0.02 > 0.05 / 3
    assert benjamini_hochberg(np.array([]), 0.1).size == 0
    with pytest.raises(InputError, match="fdr"):
        benjamini_hochberg(p, 1.5)


def test_false_discoveries_stay_under_the_rate():
    rng = np.random.default_rng(1)
    fdp, power = [], []
    for _ in range(100):
        cal = rng.lognormal(0, 1, 500)
        normal, odd = rng.lognormal(0, 1, 1000), rng.lognormal(4, 1, 50)
        picked = benjamini_hochberg(conformal_p_value(np.concatenate([normal, odd]), cal), 0.1)
        fdp.append(picked[:1000].sum() / max(1, picked.sum()))
        power.append(picked[1000:].mean())
    assert np.mean(fdp) <= 0.1 and np.mean(power) >= 0.8
    assert fewest_findable(500, 1050, 0.1) == 21  # 1/501 <= 0.1 k / 1050 from k = 21 on


def test_the_held_out_errors_travel_in_the_card():
    s = fit_error_stats(np.array([0.3, 0.1, 0.2]))
    assert s.calibration == (0.1, 0.2, 0.3)
    back = st.ErrorStats.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back == s
    with pytest.raises(InputError, match="calibration_errors"):
        st.ErrorStats.from_dict({**s.to_dict(), "calibration_errors": [0.1, 0.2]})
    old = {k: v for k, v in s.to_dict().items() if k != "calibration_errors"}
    assert st.ErrorStats.from_dict(old).calibration is None  # a card from before: loads, no conformal p-values
    res = decide(np.array([[0.25], [5.0]]), ["a"], [s])
    np.testing.assert_allclose(res.conformal_p[:, 0], [2 / 4, 1 / 4])
    assert res.records()[0]["classes"]["a"]["conformal_p_value"] == 0.5
    old_res = decide(np.array([[0.25]]), ["a"], [st.ErrorStats.from_dict(old)])
    assert old_res.records()[0]["classes"]["a"]["conformal_p_value"] is None


@pytest.fixture(scope="module")
def zeros_model(digits):
    from bank.kinds.pca import PCAModel

    images, labels = digits
    return PCAModel(n_components=8, calibration_fraction=0.5).fit(images[:1400][labels[:1400] == 0])


def test_outliers_at_a_false_discovery_rate(zeros_model, digits):
    from bank.reports.outliers import find_outliers

    images, labels = digits
    zeros, ones = images[1400:][labels[1400:] == 0][:40], images[1400:][labels[1400:] == 1][:20]
    x = np.concatenate([zeros, ones])
    names = [f"zero{i}" for i in range(len(zeros))] + [f"one{i}" for i in range(len(ones))]
    found = find_outliers(zeros_model, x, names, 0.999, "0", fdr=0.1)
    picked = [r["image"] for r in found.rows]
    assert sum(n.startswith("one") for n in picked) >= 15 and sum(n.startswith("zero") for n in picked) <= 3
    p = [r["conformal_p_value"] for r in found.rows]
    assert p == sorted(p) and found.to_json()["fdr"] == 0.1 and found.to_json()["quantile"] is None
    # a class registered before the held-out errors were kept cannot give conformal p-values: said, not guessed
    old = dataclasses.replace(zeros_model.stats_, calibration=None)
    zeros_model.stats_, kept = old, zeros_model.stats_
    try:
        with pytest.raises(InputError, match="retrain the class"):
            find_outliers(zeros_model, x, names, 0.999, "0", fdr=0.1)
    finally:
        zeros_model.stats_ = kept


def test_outliers_fdr_on_the_command_line(zeros_model, digits, tmp_path, capsys):
    from PIL import Image

    from bank.cli import main
    from bank.registry.store import Registry

    images, labels = digits
    reg = Registry(tmp_path / "reg")
    reg.register("0", zeros_model)
    folder = tmp_path / "zeros"
    folder.mkdir()
    mixed = list(images[1400:][labels[1400:] == 0][:40]) + list(images[1400:][labels[1400:] == 1][:20])
    for i, x in enumerate(mixed):
        Image.fromarray((x * 255).astype(np.uint8)).save(folder / f"{'one' if i >= 40 else 'zero'}{i}.png")
    assert main(["outliers", "0", str(folder), "--fdr", "0.1", "--registry", str(reg.root), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["fdr"] == 0.1 and doc["n_outliers"] >= 15
    assert sum("one" in r["image"] for r in doc["outliers"]) >= 15
    assert main(["outliers", "0", str(folder), "--fdr", "0.1", "--registry", str(reg.root), "--montage", "none"]) == 0
    out = capsys.readouterr().out
    assert "false discovery rate held at 0.1" in out and "conformal p-value" in out
    # too few held-out images for so strict a rate: nothing picked, and why
    assert main(["outliers", "0", str(folder), "--fdr", "0.001", "--registry", str(reg.root), "--montage",
                 "none"]) == 0
    assert "can only pick a group of at least" in capsys.readouterr().out
    assert main(["outliers", "0", str(folder), "--fdr", "0.001", "--registry", str(reg.root), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)  # strict JSON: no Infinity where nothing was picked
    assert doc["n_outliers"] == 0 and doc["cut"] is None and doc["fewest_findable"] > 1
    with pytest.raises(SystemExit):
        main(["outliers", "0", str(folder), "--fdr", "1.5", "--registry", str(reg.root)])
    assert main(["outliers", "0", str(folder), "--fdr", "0.1", "--quantile", "0.99", "--registry", str(reg.root)]) == 1
    assert "give one" in capsys.readouterr().err
