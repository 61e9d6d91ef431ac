"""bank train-all: one class per sub-folder, in parallel processes, locally or on Dask."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from bank import Registry
from bank.cli import main
from bank.training.runs import train_all

PARAMS = {"epochs": 2, "batch_size": 32, "seed": 0}


@pytest.fixture(scope="module")
def class_root(tmp_path_factory, digits):
    """Digit folders "0" and "1" (60 PNGs each, one corrupt file in "0") and "tiny" (two images: too few)."""
    images, labels = digits
    root = tmp_path_factory.mktemp("classes")
    for d in (0, 1):
        folder = root / str(d)
        folder.mkdir()
        for i, x in enumerate(images[labels == d][:60]):
            Image.fromarray((x * 255).astype(np.uint8)).save(folder / f"{i}.png")
    (root / "0" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "tiny").mkdir()
    for i in range(2):
        Image.fromarray((images[i] * 255).astype(np.uint8)).save(root / "tiny" / f"{i}.png")
    (root / ".hidden").mkdir()
    return root


def _check(runs, reg: Registry) -> None:
    by = {r.class_name: r for r in runs}
    assert sorted(by) == ["0", "1", "tiny"]
    assert by["0"].version == 1 and by["1"].version == 1 and not by["0"].error
    assert by["tiny"].version is None and "at least" in by["tiny"].error  # reported; the others still land
    assert [n for n, _ in by["0"].skipped] == [str(by["0"].folder) + "/broken.png"]
    assert reg.classes() == ["0", "1"]
    card = reg.entry("0").card
    assert card["training"]["skipped_files"]["count"] == 1
    assert reg.entry("0").has_litert  # registered by the worker like any other registration
    assert reg.verify() == []


def test_train_all_in_local_processes(class_root, tmp_path):
    reg = Registry(tmp_path / "reg")
    runs = train_all(class_root, reg.root, PARAMS, n_jobs=2)
    _check(runs, reg)


def test_train_all_on_a_dask_cluster_lands_in_the_same_registry(class_root, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    reg = Registry(tmp_path / "reg")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  env={"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}) as cluster:
        runs = train_all(class_root, reg.root, PARAMS, backend="dask", scheduler=cluster.scheduler_address)
    _check(runs, reg)


def test_the_cli_reports_each_class_and_fails_when_one_did(class_root, tmp_path, capsys):
    code = main(["train-all", str(class_root), "--registry", str(tmp_path / "reg"), "--epochs", "2", "--jobs", "1",
                 "--classes", "1,tiny", "--json"])
    out, err = capsys.readouterr()
    assert code == 1
    doc = json.loads(out)
    assert doc["failed"] == ["tiny"] and [c["version"] for c in doc["classes"]] == [1, None]
    assert "[2/2] class 'tiny': FAILED" in err and "[1/2] class '1': version 1" in err
    assert main(["train-all", str(class_root), "--registry", str(tmp_path / "reg"), "--classes", "nope"]) == 1
    assert "no sub-folder for class(es) 'nope'" in capsys.readouterr().err


def test_a_backup_cut_short_while_written_falls_back_to_the_one_before(tmp_path):
    """Killed while Keras wrote the epoch's backup: the file is there but unreadable (h5py raises RuntimeError
    or ValueError, which Keras's own fallback, for OSError only, let through: the resumed run died). The
    backup before it is taken instead, and the training goes on."""
    import h5py

    from bank import AutoencoderModel

    x = np.random.default_rng(0).random((60, 12, 12)).astype(np.float32)

    def stop(e):
        if e["epoch"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        AutoencoderModel(epochs=6, batch_size=16, verbose=0, checkpoint_dir=tmp_path, patience=10,
                            progress=stop).fit(x)
    with h5py.File(tmp_path / "backup" / "latest.weights.h5", "w") as f:  # its groups not written yet
        f.create_group("vars")
    again = AutoencoderModel(epochs=6, batch_size=16, verbose=0, checkpoint_dir=tmp_path, patience=10).fit(x)
    assert 2 <= again.resumed_from_ <= 3 and len(again.history_["loss"]) == 6
