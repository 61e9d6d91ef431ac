"""A newcomer's first hour: options checked before any work, progress a person can trust, paths as given."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from PIL import Image

import bank.io.data
import bank.io.pipeline
import bank.training.runs
from bank.cli import main
from bank.training.runs import ClassRun


@pytest.fixture
def two_classes(tmp_path, digits):
    """Folders "0" and "1" of 30 digit PNGs each."""
    images, labels = digits
    for d in (0, 1):
        (tmp_path / "data" / str(d)).mkdir(parents=True)
        for i, x in enumerate(images[labels == d][:30]):
            Image.fromarray((x * 255).astype(np.uint8)).save(tmp_path / "data" / str(d) / f"{i}.png")
    return tmp_path / "data"


@pytest.fixture
def no_reading(monkeypatch):
    """Fail the test if any image is scanned or any class folder is listed."""
    def refuse(*a, **k):
        raise AssertionError("images were read before the arguments were checked")

    monkeypatch.setattr(bank.io.pipeline, "scan", refuse)
    monkeypatch.setattr(bank.io.data, "class_source", refuse)
    monkeypatch.setattr(bank.training.runs, "train_one", refuse)


@pytest.mark.parametrize("argv, said", [
    (["train", "a/b"], "class name 'a/b' contains a path separator"),
    (["train", ".."], "class name '..' starts with a dot"),
    (["train", "c", "--size", "4000x4000"], "size: each side must be in 1..1024, got '4000x4000'"),
    (["train", "c", "--epochs", "0"], "epochs: expected a whole number of at least 1, got 0"),
    (["train", "c", "--filters", "8,0"], "--filters: expected numbers of filters of at least 1"),
    (["train", "c", "--latent", "0"], "--latent: expected a code size of at least 1"),
    (["train-all", "--size", "0x9"], "size: each side must be in 1..1024"),
    (["train-all", "--patience", "-1"], "patience: expected a whole number of at least 0, got -1"),
])
def test_names_sizes_and_options_are_checked_before_any_image_is_read(argv, said, two_classes, tmp_path,
                                                                         no_reading, capsys):
    data = str(two_classes / "0") if argv[0] == "train" else str(two_classes)
    argv = argv[:2] + [data] + argv[2:] if argv[0] == "train" else argv[:1] + [data] + argv[1:]
    assert main([*argv, "--registry", str(tmp_path / "reg")]) == 1
    assert said in capsys.readouterr().err


def test_train_all_refuses_a_folder_that_cannot_be_a_class_before_training(two_classes, tmp_path, no_reading,
                                                                           capsys):
    (two_classes / "unknown").mkdir()
    assert main(["train-all", str(two_classes), "--registry", str(tmp_path / "reg")]) == 1
    assert "class name 'unknown' is reserved" in capsys.readouterr().err


def test_train_all_says_each_epoch_with_the_time_left_and_each_class_as_it_lands(two_classes, tmp_path, capsys):
    code = main(["train-all", str(two_classes), "--registry", str(tmp_path / "reg"), "--epochs", "2", "--jobs", "1"])
    err = capsys.readouterr().err
    assert code == 0
    for c in ("0", "1"):
        assert f"class '{c}': epoch 1/2, loss " in err and "s left for this class if it runs all 2 epochs)" in err
        assert f"class '{c}': epoch 2/2, loss " in err
    assert "[1/2] class '0': version 1, 30 images" in err and "1 class(es) still training or waiting" in err
    assert err.index("class '0': epoch 2/2") < err.index("[1/2] class '0'")


def test_train_all_json_stays_quiet_per_epoch(two_classes, tmp_path, capsys):
    assert main(["train-all", str(two_classes), "--registry", str(tmp_path / "reg"), "--epochs", "1", "--jobs", "1",
                 "--classes", "1", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["failed"] == [] and "epoch 1/1" not in err


def test_an_interrupted_train_all_says_what_landed_and_how_to_go_on(two_classes, tmp_path, monkeypatch, capsys):
    def interrupted(root, registry_root, params, *, on_done, **kw):
        on_done(ClassRun("0", str(two_classes / "0"), version=3, n_images=30), 1, 2)
        raise KeyboardInterrupt

    monkeypatch.setattr(bank.training.runs, "train_all", interrupted)
    assert main(["train-all", str(two_classes), "--registry", str(tmp_path / "reg")]) == 130
    err = capsys.readouterr().err
    assert ("bank train-all: interrupted. Registered before that: 0 (version 3). To go on with the others, each "
            "from its last finished epoch, run the same command with --classes 1") in err


def test_a_resumed_class_says_so(two_classes, tmp_path, monkeypatch, capsys):
    def resumed(root, registry_root, params, *, on_done, **kw):
        run = ClassRun("1", str(two_classes / "1"), version=2, n_images=30, resumed_from_epoch=4)
        on_done(run, 1, 1)
        return [run]

    monkeypatch.setattr(bank.training.runs, "train_all", resumed)
    assert main(["train-all", str(two_classes), "--registry", str(tmp_path / "reg"), "--classes", "1"]) == 0
    assert "[1/1] class '1': version 2, 30 images, 0 s, went on from epoch 4 of an interrupted run" in \
        capsys.readouterr().err


def test_a_missing_registry_is_named_as_given_and_how_it_was_chosen(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BANK_REGISTRY", raising=False)
    assert main(["list"]) == 1
    assert (f"no registry at registry (the default, in {tmp_path}; choose one with --registry PATH or "
            "$BANK_REGISTRY)") in capsys.readouterr().err
    monkeypatch.setenv("BANK_REGISTRY", "elsewhere")
    assert main(["classify", "x.png"]) == 1
    assert "no registry at elsewhere (from $BANK_REGISTRY)" in capsys.readouterr().err
    assert main(["list", "--registry", "mine"]) == 1
    assert "no registry at mine: check the path" in capsys.readouterr().err


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads the worker's state from /proc")
def test_a_worker_stops_when_its_parent_is_gone(tmp_path):
    pid_file = tmp_path / "child.pid"
    parent = textwrap.dedent(f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", '''
        import time, os
        from bank.training.runs import _exit_with_parent
        _exit_with_parent(every=0.1)
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        time.sleep(60)
        '''])
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", parent])
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the child did not start"
        time.sleep(0.1)
    child = int(pid_file.read_text())
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = open(f"/proc/{child}/stat").read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return
        if state in ("Z", "X"):  # exited; whoever adopted it has not reaped it yet
            return
        time.sleep(0.1)
    os.kill(child, signal.SIGKILL)
    raise AssertionError("the worker went on after its parent was killed")


def test_the_demo_says_how_its_digits_train_without_a_line_per_epoch(monkeypatch):
    from bank import demo

    clock = iter([0.0, 1.0, 6.0, 7.0, 12.5])
    monkeypatch.setattr(demo.time, "perf_counter", lambda: next(clock))
    said = []
    report = demo._every(5.0, said.append)
    for epoch in range(1, 5):
        report({"epoch": epoch})
    assert [e["epoch"] for e in said] == [2, 4]  # at 6 s and 12.5 s: one line per 5 s, not per epoch


def test_json_keeps_the_reasons_when_no_input_could_be_read(bank_registry, tmp_path, capsys):
    Image.new("L", (300, 300), 9).save(tmp_path / "big.png")
    code = main(["classify", str(tmp_path / "big.png"), "--registry", str(bank_registry.root), "--max-pixels", "1000",
                 "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and doc["error"].startswith("no readable images") and doc["internal"] is False
    assert doc["skipped"][0]["image"] == str(tmp_path / "big.png") and "limit of 1000" in doc["skipped"][0]["error"]


def test_an_interrupted_train_all_with_nothing_landed_says_to_run_it_again(two_classes, tmp_path, monkeypatch,
                                                                           capsys):
    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(bank.training.runs, "train_all", interrupted)
    assert main(["train-all", str(two_classes), "--registry", str(tmp_path / "reg")]) == 130
    assert ("interrupted before any class was registered; run the same command again: each from its last finished "
            "epoch") in capsys.readouterr().err


def test_classify_labels_the_nearest_class_that_accepts_the_image_and_says_the_nearer_one_flags_it():
    from bank.verdict import stats as st
    from bank.cli.answering import classify_rows
    from bank.verdict.decision import decide

    stats = [st.ErrorStats(mean=1.0, std=0.1, n=100), st.ErrorStats(mean=2.0, std=0.2, n=100)]
    result = decide(np.array([[1.5, 2.1], [1.0, 3.0]]), ["a", "b"], stats, ["odd.png", "a.png"], method="gaussian",
                    margin=None)  # odd: a has the lowest error but flags it (z 5); b accepts it
    rows, doubtful = classify_rows(result)
    assert doubtful == 1 and rows[0][:3] == ["odd.png", "b", "a"]
    assert rows[0][3] == 2.1  # the label's own error
    assert rows[0][-1] == "a is nearer but flags it (Gaussian z)" and rows[1][-1] == ""


# ---------------------------------------------------------------- 1. a training that did not finish says so

NEWCOMER_CURVE = [0.09, 0.078, 0.11, 0.15, 0.17, 0.19, 0.196]  # the circle model: epoch 2 kept of 7


def test_an_unfinished_training_is_said_in_train_card_show_and_evaluate(tmp_path, two_classes, monkeypatch, capsys):
    from bank.kinds.autoencoder import AutoencoderModel

    real = AutoencoderModel._train

    def newcomer(self, *a, **k):  # the real training, then the loss curve the newcomer saw
        real(self, *a, **k)
        return {"loss": [0.05] * len(NEWCOMER_CURVE), "val_loss": list(NEWCOMER_CURVE)}

    monkeypatch.setattr(AutoencoderModel, "_train", newcomer)
    reg = str(tmp_path / "reg")
    code = main(["train", "0", str(two_classes / "0"), "--registry", reg, "--epochs", "30", "--patience", "2"])
    _, err = capsys.readouterr()
    assert code == 0
    assert "warning: training kept epoch 2 of 7" in err and "try --patience 15" in err
    monkeypatch.setattr(AutoencoderModel, "_train", real)
    assert main(["train", "1", str(two_classes / "1"), "--registry", reg, "--epochs", "2", "--batch-size", "8"]) == 0
    capsys.readouterr()

    card = json.loads(next((tmp_path / "reg" / "0").glob("*/card.json")).read_text())
    assert card["training"]["convergence"] == {"status": "stopped early", "kept_epoch": 2, "epochs_run": 7,
                                               "change": 1.5128}
    assert main(["show", "0", "--registry", reg]) == 0
    out = capsys.readouterr().out
    assert "NOT FINISHED: stopped early" in out and "training kept epoch 2 of 7" in out
    assert main(["show", "1", "--registry", reg]) == 0
    assert "NOT FINISHED" not in capsys.readouterr().out

    report = tmp_path / "report"
    assert main(["evaluate", str(two_classes), "--registry", reg, "--out", str(report)]) == 0
    out = capsys.readouterr().out
    assert "class '0': training kept epoch 2 of 7" in out
    figures = json.loads((report / "report.json").read_text())
    assert list(figures["unfinished_trainings"]) == ["0"]
    assert figures["unfinished_trainings"]["0"]["status"] == "stopped early"


def test_a_class_name_that_is_no_sub_folder_is_refused(tmp_path, two_classes, capsys):
    # a folder of class folders: "bank train a DATA" (a typo for a class) must not train on every class
    for name, said in (("Q", "none named 'Q': name the class of one of them"), ("O", "none named 'O'")):
        code = main(["train", name, str(two_classes), "--registry", str(tmp_path / "r")])
        err = capsys.readouterr().err
        assert code == 1 and said in err and "(0, 1)" in err, err
    assert not (tmp_path / "r").exists()
