"""bank.reports.outliers.find_outliers: a class's images past a quantile of its held-out errors, as data."""

from __future__ import annotations

import numpy as np
import pytest

from bank.errors import InputError
from bank.reports.outliers import find_outliers


def test_foreign_images_rank_first_and_every_row_is_past_the_cut(bank_registry, digits):
    images, labels = digits
    det = bank_registry.load_detector("0", runtime="keras")
    zeros, ones = images[1400:][labels[1400:] == 0][:30], images[1400:][labels[1400:] == 1][:5]
    x = np.concatenate([zeros, ones])
    names = [f"zero-{i}" for i in range(len(zeros))] + [f"one-{i}" for i in range(len(ones))]

    found = find_outliers(det, x, names, 0.99, "0")

    assert found.cut == det.stats_.quantiles["0.99"] and found.n_images == len(x)
    errors = det.reconstruction_error(x)
    assert [r["image"] for r in found.rows] == [names[i] for i in found.order]
    assert [r["rank"] for r in found.rows] == list(range(1, len(found.rows) + 1))
    assert sorted(found.order.tolist()) == np.flatnonzero(errors > found.cut).tolist()  # all past the cut, no other
    ranked = [r["error"] for r in found.rows]
    assert ranked == sorted(ranked, reverse=True)
    assert {f"one-{i}" for i in range(len(ones))} <= {r["image"] for r in found.rows[: len(ones) + 3]}
    for r in found.rows:
        assert r["times_cut"] == pytest.approx(r["error"] / found.cut) and r["times_cut"] > 1
        assert r["method"] == found.method
    assert found.past_each_quantile["0.99"] == len(found.rows)
    assert found.past_each_quantile["0.5"] >= found.past_each_quantile["0.99"]
    doc = found.to_json("m.png", [("bad.png", "unreadable")])
    assert doc["n_outliers"] == len(found.rows) and doc["montage"] == "m.png"
    assert doc["skipped"] == [{"image": "bad.png", "error": "unreadable"}]


def test_a_quantile_the_class_does_not_keep_is_refused_and_a_thin_one_warned(bank_registry, digits):
    det = bank_registry.load_detector("0", runtime="keras")
    x = digits[0][:4]
    with pytest.raises(InputError, match="quantile"):
        find_outliers(det, x, ["a", "b", "c", "d"], 0.8, "0")
    thin = find_outliers(det, x, ["a", "b", "c", "d"], 0.999, "0")  # a tiny class: ~15 held-out errors
    assert det.stats_.n < 1000 and "rests on" in thin.warning
    assert find_outliers(det, x, ["a", "b", "c", "d"], 0.5, "0").warning is None
