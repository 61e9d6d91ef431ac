"""bank.registry.summary: what `bank show` tells about an entry, as data."""

from __future__ import annotations

import dataclasses
import math
import shutil

import pytest

from bank import Registry, RegistryError
from bank.registry.summary import SKIPPED_SHOWN, entry_summary, summarize


def test_the_summary_works_out_the_cuts_and_the_model_from_the_card(bank_registry):
    m = entry_summary(bank_registry, "1")
    e, s = m.entry, m.stats
    assert m.broken is None and (e.class_name, e.version) == ("1", 1)
    arch = e.card["params"]["architecture"]
    assert m.model == f"{arch['name']} autoencoder" and m.model_params == arch["params"]
    assert m.convergence == e.card["training"]["convergence"]["status"] and m.resumed_from_epoch == 0
    assert m.error_cuts["gaussian"] == pytest.approx(s.mean + 3 * s.std)
    assert m.error_cuts["lognormal"] == pytest.approx(math.exp(s.log_mean + 3 * s.log_std))
    assert m.complexity is not None and m.complexity.typical == pytest.approx(math.exp(s.complexity_mean))
    lo, hi = m.complexity.accepted
    assert lo < m.complexity.typical < hi
    assert m.checksums == sorted(e.card["files"].items())  # the model and its LiteRT twins
    assert m.margin_share == pytest.approx(1 - math.exp(-m.margin))
    assert m.to_json() == {**e.card, "broken": None}


def test_a_corrupt_model_is_told_not_raised_and_a_missing_class_raises(bank_registry, tmp_path):
    root = tmp_path / "reg"
    shutil.copytree(bank_registry.root, root)
    with open(root / "7" / "1" / "model.keras", "ab") as fh:
        fh.write(b"x")
    m = entry_summary(Registry(root), "7")
    assert "checksum mismatch" in m.broken and m.to_json()["broken"] == m.broken
    with pytest.raises(RegistryError, match="no class 'nope'"):
        entry_summary(Registry(root), "nope")


def test_skipped_files_are_counted_and_the_first_few_named(bank_registry):
    e = bank_registry.entry("0")
    card = {**e.card, "training": {**e.card["training"], "resumed_from_epoch": 3,
                                   "skipped_files": {"count": 9, "files": [{"image": f"f{i}"} for i in range(9)]}}}
    m = summarize(dataclasses.replace(e, card=card))
    assert m.skipped_count == 9 and m.skipped_shown == [f"f{i}" for i in range(SKIPPED_SHOWN)]
    assert m.resumed_from_epoch == 3
    assert summarize(e).skipped_count == 0 and summarize(e).skipped_shown == []
