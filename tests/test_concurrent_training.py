"""Trainings at the same time: each run keeps its state in a folder of its own, named by its key."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bank import AutoencoderModel, Registry
from bank.nets import trainstate
from bank.cli import main


def _state(folder, key: str) -> None:
    """Leave in ``folder`` what a run killed after its first epoch leaves: a stamp and a backup."""
    (folder / "backup").mkdir(parents=True, exist_ok=True)
    (folder / "backup" / "training_metadata.json").write_text("{}")
    trainstate.stamp(folder / trainstate.STAMP_FILE, {"run": key})


KEY_A, KEY_B = "a" * 64, "b" * 64


def test_a_run_resumes_its_own_state_and_never_another_runs(tmp_path):
    home = tmp_path / ".training" / "c0"
    with trainstate.claim(home, KEY_A) as work:
        assert work == home / KEY_A[:16]
        _state(work, KEY_A)  # then "killed": the state stays
    assert trainstate.resumable(home / KEY_A[:16], KEY_A) and (home / f"{KEY_A[:16]}.lock").exists()

    with trainstate.claim(home, KEY_B) as other:  # other settings: a folder of their own
        assert other == home / KEY_B[:16] and not trainstate.resumable(other, KEY_B)
    assert not other.exists() and not (home / f"{KEY_B[:16]}.lock").exists()  # nothing to resume: gone
    assert trainstate.resumable(home / KEY_A[:16], KEY_A)  # untouched

    with trainstate.claim(home, KEY_A) as again:  # the same run: resumes
        assert again == home / KEY_A[:16] and trainstate.resumable(again, KEY_A)
        with trainstate.claim(home, KEY_A) as twin:  # the same run while the first is alive: its own folder
            assert twin == home / f"{KEY_A[:16]}-2" and not trainstate.resumable(twin, KEY_A)
            _state(twin, KEY_A)
        assert trainstate.resumable(again, KEY_A)
    with trainstate.claim(home, KEY_A, fresh=True) as fresh:  # --fresh: the first free folder, emptied
        assert fresh == home / KEY_A[:16] and not any(fresh.iterdir())
    assert trainstate.resumable(home / f"{KEY_A[:16]}-2", KEY_A)  # only the folder taken was discarded
    with trainstate.claim(home, KEY_A) as last:
        assert last == home / f"{KEY_A[:16]}-2"  # the free folder with state is preferred over a free name
        shutil.rmtree(last)  # the run finished and registered
    assert not home.exists()  # no empty folders or lock files left


def test_a_lock_file_removed_between_open_and_lock_is_taken_again(tmp_path, monkeypatch):
    """The holder before us unlinks its lock file after we opened it: locking that unlinked file
    would let a third process lock a new file of the same name; the path is checked and opened again."""
    lock = tmp_path / "k.lock"
    real, calls = trainstate.fcntl.flock, []

    def flock(fd, op):
        if not calls:  # the first open: its file is removed (and another made) before our lock
            lock.unlink()
            lock.write_text("")
        calls.append(fd)
        return real(fd, op)

    monkeypatch.setattr(trainstate.fcntl, "flock", flock)
    fd = trainstate._try_lock(lock)
    try:
        assert len(calls) == 2 and os.fstat(fd).st_ino == os.stat(lock).st_ino
    finally:
        os.close(fd)


def test_the_run_key_is_what_fit_stamps_and_changes_with_the_settings(digits, tmp_path):
    images, labels = digits
    x = images[labels == 4][:40]
    det = AutoencoderModel(epochs=1, batch_size=16, verbose=0, checkpoint_dir=tmp_path / "w")
    key = det.run_key(x)
    det.fit(x)
    assert json.loads((tmp_path / "w" / trainstate.STAMP_FILE).read_text())["run"] == key
    assert AutoencoderModel(epochs=2).run_key(x) != AutoencoderModel(epochs=1).run_key(x)
    assert AutoencoderModel(epochs=1, batch_size=16).run_key(x[:-1]) != key
    assert AutoencoderModel(epochs=1, batch_size=16).run_key(x) == key


@pytest.fixture(scope="module")
def two_folders(tmp_path_factory):
    """Classes c0 and c1: 20 8x8 gray PNGs each."""
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 8)[None, :].repeat(8, 0)
    for c in ("c0", "c1"):
        (root / c).mkdir()
        for i in range(20):
            img = ramp + rng.normal(0, 12, (8, 8)) if c == "c0" else rng.uniform(0, 255, (8, 8))
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / c / f"{i}.png")
    return root


def test_an_interrupted_train_says_how_to_resume_and_other_settings_keep_off(two_folders, tmp_path, monkeypatch,
                                                                            capsys):
    """bank train interrupted after an epoch: it says where its state is; the same command finds it
    (and says so before training); other settings train in a folder of their own."""
    def interrupted(self, model, train, monitor, run_id):
        _state(Path(self.checkpoint_dir), run_id)  # an epoch finished and was backed up, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(AutoencoderModel, "_train", interrupted)
    reg = tmp_path / "reg"
    cmd = ["train", "c0", str(two_folders / "c0"), "--registry", str(reg), "--epochs", "2"]
    assert main(cmd) == 130
    [work] = [p for p in (reg / ".training" / "c0").iterdir() if p.is_dir()]
    err = capsys.readouterr().err
    assert f"run the same command again to resume from the last finished epoch (state in {work};" in err
    assert main(cmd) == 130
    err = capsys.readouterr().err
    assert f"found the state of an interrupted training of class 'c0' with these images and settings in {work}" in err
    assert main([*cmd, "--epochs", "3"]) == 130
    err = capsys.readouterr().err
    assert "found the state" not in err and f"(state in {work})" not in err
    assert len([p for p in (reg / ".training" / "c0").iterdir() if p.is_dir()]) == 2
    assert trainstate.resumable(work, json.loads((work / trainstate.STAMP_FILE).read_text())["run"])


def test_eight_trainings_of_two_classes_at_once_all_land(two_folders, tmp_path, capsys):
    """Four `bank train` of c0 and four of c1, same data and settings, started together."""
    reg = tmp_path / "reg"
    env = {**os.environ, "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    t0 = time.monotonic()
    procs = [subprocess.Popen([sys.executable, "-m", "bank", "train", c, str(two_folders / c), "--registry", str(reg),
                               "--epochs", "2", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env)
             for c in ("c0", "c1") * 4]
    outs = [p.communicate(timeout=600) for p in procs]
    seconds = time.monotonic() - t0
    assert [p.returncode for p in procs] == [0] * 8, [err[-1500:] for _, err in outs]
    versions = {c: sorted(json.loads(out)["version"] for (out, _), c2 in zip(outs, ("c0", "c1") * 4) if c2 == c)
                for c in ("c0", "c1")}
    assert versions == {"c0": [1, 2, 3, 4], "c1": [1, 2, 3, 4]}
    registry = Registry(reg)
    assert {c: registry.versions(c) for c in ("c0", "c1")} == versions
    assert main(["registry", "verify", "--registry", str(reg)]) == 0, capsys.readouterr()
    assert not (reg / ".training").exists()  # every state folder and lock file gone
    folders = {re.search(r"\(state in (\S+)\)", err).group(1) for _, err in outs}
    print(f"8 trainings at once: {seconds:.1f} s; state folders used: {len(folders)}")
    assert len(folders) > 2  # runs of one class held state at the same time (each in its own folder)
