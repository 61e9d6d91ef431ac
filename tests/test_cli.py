"""Every command, in-process, on tiny data; bad input is named and skipped."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from bank.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def digit_folders(tmp_path_factory):
    """PNG folders of digits 0 and 1 (scaled up to 16x16), plus a bad file in each."""
    from sklearn.datasets import load_digits

    d = load_digits()
    root = tmp_path_factory.mktemp("digits")
    for digit in (0, 1):
        folder = root / str(digit)
        folder.mkdir()
        for i, img in enumerate(d.images[d.target == digit][:70]):
            Image.fromarray((img * 255 / 16).astype(np.uint8)).resize((16, 16)).save(folder / f"{i:03d}.png")
        (folder / "zz_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return root


@pytest.fixture(scope="module")
def trained(digit_folders, tmp_path_factory):
    reg = tmp_path_factory.mktemp("cli_registry")
    for digit in ("0", "1"):
        code = main(["train", digit, str(digit_folders), "--registry", str(reg), "--epochs", "4", "--json"])
        assert code == 0
    return reg


def test_train_reports_the_skipped_file_and_registers(digit_folders, tmp_path, capsys):
    code, out, err = run(capsys, "train", "zero", str(digit_folders / "0"), "--registry", str(tmp_path),
                         "--epochs", "2", "--size", "12x12", "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["class"] == "zero" and summary["version"] == 1
    assert summary["input_spec"] == {"height": 12, "width": 12, "color": "gray", "scaling": "unit"}
    assert [s["image"].endswith("zz_corrupt.png") for s in summary["skipped"]] == [True]
    assert "zz_corrupt.png" in err
    assert "warning: the error statistics rest on 7 held-out images" in err
    assert summary["training"]["n_images"] == 70
    assert summary["stats"]["n"] == summary["training"]["n_calibration"]


def test_list_show_activate_remove(trained, capsys):
    code, out, _ = run(capsys, "list", "--registry", str(trained))
    assert code == 0 and "16x16 gray" in out and out.splitlines()[0].startswith("class")
    code, out, _ = run(capsys, "list", "--registry", str(trained), "--json")
    assert [c["class"] for c in json.loads(out)["classes"]] == ["0", "1"]
    code, out, _ = run(capsys, "show", "1", "--registry", str(trained))
    assert code == 0 and "error stats" in out and "lognormal z > 3: error >" in out
    code, out, _ = run(capsys, "show", "1", "--registry", str(trained), "--json")
    assert json.loads(out)["class"] == "1"
    code, _, err = run(capsys, "show", "nope", "--registry", str(trained))
    assert code == 1 and "no class 'nope'" in err
    code, _, err = run(capsys, "activate", "1", "9", "--registry", str(trained))
    assert code == 1 and "version 9" in err


def test_classify_and_score_a_folder_with_a_bad_file(trained, digit_folders, capsys):
    code, out, err = run(capsys, "classify", str(digit_folders), "--registry", str(trained), "--json")
    assert code == 0
    doc = json.loads(out)
    assert len(doc["results"]) == 140 and len(doc["skipped"]) == 2
    truth = [r["image"].split("/")[-2] for r in doc["results"]]
    assert np.mean([r["nearest"] == t for r, t in zip(doc["results"], truth)]) >= 0.9
    assert "skipped 2" in err
    code, out, _ = run(capsys, "classify", str(digit_folders / "1" / "000.png"), "--registry", str(trained))
    assert code == 0 and "000.png" in out and "label" in out
    code, out, _ = run(capsys, "score", str(digit_folders / "0" / "000.png"), "--registry", str(trained))
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["image", "class", "error", "z", "score", "test", "z", "p",
                                              "margin", "input", "cx", "z", "flag"] and len(lines) == 5
    assert "margin" in lines[3].split("FLAG")[1]  # class 1 on a 0: 1 is far worse
    assert "test z: the complexity-corrected z of the error" in lines[4]
    assert "input cx z: the input complexity z" in lines[4]


def test_the_flag_rule_is_chosen_per_call_and_unknown_says_why(trained, tmp_path, capsys):
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16), dtype=np.uint8)).save(noise)
    code, out, _ = run(capsys, "classify", str(noise), "--registry", str(trained))
    assert code == 0 and "unknown" in out and "error too high for the class (complexity-corrected z" in out
    blank = tmp_path / "blank.png"
    Image.new("L", (16, 16), 0).save(blank)
    code, out, _ = run(capsys, "classify", str(blank), "--registry", str(trained), "--json")
    rec = json.loads(out)["results"][0]
    assert rec["unknown"] and all(any("simpler than the class's images" in r for r in c["reasons"])
                                  for c in rec["classes"].values())
    code, out, _ = run(capsys, "score", str(noise), "--registry", str(trained), "--json", "--method", "gaussian",
                       "--margin", "none", "--threshold", "1e6", "--complexity", "none")
    doc = json.loads(out)
    assert (doc["method"], doc["margin"], doc["threshold"], doc["complexity_threshold"]) == ("gaussian", None, 1e6,
                                                                                             None)
    rec = doc["results"][0]
    assert not rec["unknown"] and all(c["test_z"] == c["z"] and not c["flag"] for c in rec["classes"].values())
    with pytest.raises(SystemExit):
        main(["classify", str(noise), "--margin", "-1"])


def test_classify_with_nothing_readable_fails_clearly(trained, tmp_path, capsys):
    (tmp_path / "a.png").write_text("text, not an image")
    code, out, err = run(capsys, "classify", str(tmp_path / "a.png"), "--registry", str(trained))
    assert code == 1 and out == "" and "a.png" in err and "no readable images" in err


def test_classify_against_an_empty_registry_says_so(tmp_path, digit_folders, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "classify", str(digit_folders / "0"), "--registry", str(tmp_path / "empty"))
    assert code == 1 and "train one first" in err
    code, _, err = run(capsys, "classify", str(digit_folders / "0"), "--registry", str(tmp_path / "missing"))
    assert code == 1 and f"no registry at {tmp_path / 'missing'}" in err  # a wrong path is not an empty registry
    assert run(capsys, "list", "--registry", str(tmp_path / "missing"))[0] == 1


def test_bad_class_name_writes_nothing(digit_folders, tmp_path, capsys):
    code, _, err = run(capsys, "train", "../escape", str(digit_folders / "0"), "--registry", str(tmp_path / "r"),
                       "--epochs", "1")
    assert code == 1 and "class name" in err
    assert not (tmp_path / "escape").exists()


def test_demo_json_reports_accuracy(tmp_path, capsys):
    code, out, _ = run(capsys, "demo", "--registry", str(tmp_path), "--epochs", "4", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["n_test"] == 450 and doc["accuracy"] >= 0.85
    assert doc["classes"] == [str(d) for d in range(10)]
    assert doc["foreign"]["blank"] == doc["foreign"]["flat gray"] == "unknown" and "noise" in doc["foreign"]


def test_demo_table_says_why_each_flagged_class_flags(monkeypatch, capsys):
    """The demo's text, on a made-up result (no training): a flagged row names its tests, never a bare FLAG."""
    import bank.demo
    from bank.verdict import stats as st
    from bank.verdict.decision import decide

    stats = [st.ErrorStats(mean=1.0, std=0.1, n=100), st.ErrorStats(mean=2.0, std=0.2, n=100)]
    r = decide(np.array([[1.25, 1.0]]), ["0", "1"], stats, names=["test #0 (digit 1)"], method="gaussian")
    fake = {"accuracy": 1.0, "unknown_rate": 0.0, "n_test": 1, "classes": ["0", "1"], "train_seconds": 0.1,
            "registry": "reg", "foreign": {"blank": "unknown"}, "examples": bank.demo.examples_of(r, 1)}
    monkeypatch.setattr(bank.demo, "run_demo", lambda *a, **k: fake)
    code, out, _ = run(capsys, "demo", "--registry", "unused")
    assert code == 0
    rows = [line for line in out.splitlines() if line.startswith("test #0")]
    assert len(rows) == 2 and rows[0].endswith("FLAG (margin)") and "FLAG" not in rows[1]
    assert "input cx z: the input complexity z" in out


def test_help_is_fast_and_does_not_import_tensorflow():
    code = "import sys; from bank.cli import main\ntry: main(['--help'])\nexcept SystemExit: pass\n" \
           "print('tensorflow' in sys.modules, file=sys.stderr)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "classify" in out.stdout and out.stderr.strip() == "False"


@pytest.mark.parametrize("command", ["classify", "score"])
def test_answering_a_file_imports_no_tensorflow_scipy_or_scikit_learn(trained, digit_folders, command):
    """`bank classify one.png` starts fast: the answering commands import none of the heavy libraries (their
    display strings once pulled in SciPy and scikit-learn: 0.7 s of a 1 s run)."""
    code = (f"import sys\nfrom bank.cli import main\nrc = main([{command!r}, {str(digit_folders / '0' / '000.png')!r}, "
            f"'--registry', {str(trained)!r}])\n"
            "print('HEAVY', sorted(m for m in ('tensorflow', 'keras', 'scipy', 'sklearn') if m in sys.modules), rc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY [] 0" in out.stdout


def test_evaluate_writes_a_full_report(trained, digit_folders, tmp_path, capsys):
    out_dir = tmp_path / "report"
    code, out, err = run(capsys, "evaluate", str(digit_folders), "--registry", str(trained), "--out", str(out_dir),
                         "--json")
    assert code == 0
    f = json.loads(out)
    assert f["n_images"] == 140 and len(f["skipped"]) == 2 and "zz_corrupt.png" in err
    assert f["accuracy"] > 0.9 and f["auroc_mean"] > 0.9
    assert 0 <= f["false_reject"] <= 1 and 0 <= f["false_accept"] <= 1
    assert set(f["per_class"]) == {"0", "1"} and f["per_class"]["0"]["welch_t"] > 0
    assert sum(map(sum, f["confusion"]["counts"])) == 140
    names = {p.name for p in out_dir.iterdir()}
    assert {"report.json", "report.html", "confusion.png", "hist_000.png", "hist_001.png", "montage_sample.png",
            "montage_worst.png", "loss.png"} <= names
    page = (out_dir / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 6 and "src='http" not in page  # self-contained
    assert json.loads((out_dir / "report.json").read_text())["accuracy"] == f["accuracy"]


def test_evaluate_prints_the_foreign_unknown_rate_and_the_training_warnings(trained, digit_folders, tmp_path, capsys):
    data = tmp_path / "data"
    for digit in ("0", "1"):
        (data / digit).mkdir(parents=True)
        for p in sorted((digit_folders / digit).glob("0*.png"))[:20]:
            (data / digit / p.name).write_bytes(p.read_bytes())
    foreign = data / "not-a-digit"
    foreign.mkdir()
    rng = np.random.default_rng(0)
    Image.new("L", (16, 16), 0).save(foreign / "blank.png")
    Image.new("L", (16, 16), 128).save(foreign / "gray.png")
    Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(foreign / "noise.png")
    out_dir = tmp_path / "report"
    code, out, _ = run(capsys, "evaluate", str(data), "--registry", str(trained), "--out", str(out_dir))
    assert code == 0
    f = json.loads((out_dir / "report.json").read_text())
    assert f["n_foreign"] == 3 and f["foreign_classes"] == ["not-a-digit"]
    lines = out.splitlines()
    assert lines[0] == "43 images: 40 of the bank's 2 classes, 3 foreign (of classes outside the bank: not-a-digit)"
    rule = next(x for x in lines if x.startswith("flags:"))
    assert "complexity-corrected z of the error > 3" in rule and "|input complexity z| > 4" in rule
    own = next(x for x in lines if x.startswith("called unknown:") and "bank's classes" in x)
    assert f"{f['unknown_rate']:.2%} of the images of the bank's classes ({f['n_unknown']} of 40" in own
    foreign_line = next(x for x in lines if x.startswith("called unknown:") and "foreign" in x)
    assert foreign_line.startswith(f"called unknown: {f['foreign_unknown_rate']:.2%} of the foreign images "
                                   f"({f['n_foreign_unknown']} of 3")
    assert f["n_foreign_unknown"] >= 2  # blank and gray are far simpler than any digit
    # the cards' training warnings (70 images: few held out), in the summary, report.json and report.html
    assert f["training_warnings"].keys() == {"0", "1"}
    assert any("held-out images" in w for w in f["training_warnings"]["0"])
    assert "training warnings (from the classes' cards" in out
    assert "  class '0': the error statistics rest on" in out
    page = (out_dir / "report.html").read_text()
    assert "Training warnings" in page and "the error statistics rest on" in page
    assert "foreign images, of classes outside the bank (not-a-digit; should be high)" in page
    # without foreign images the summary says how to measure them
    code, out, _ = run(capsys, "evaluate", str(digit_folders), "--registry", str(trained), "--out", str(out_dir))
    assert code == 0 and "called unknown, foreign images: none given" in out


def test_outliers_ranks_the_odd_images_first(trained, digit_folders, tmp_path, capsys):
    folder = tmp_path / "zeros"
    folder.mkdir()
    for p in sorted((digit_folders / "0").glob("0*.png"))[:30]:
        (folder / p.name).write_bytes(p.read_bytes())
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(folder / "noise.png")
    Image.open(digit_folders / "1" / "000.png").save(folder / "a_one.png")
    montage = tmp_path / "odd.png"
    code, out, _ = run(capsys, "outliers", "0", str(folder), "--registry", str(trained), "--quantile", "0.99",
                       "--montage", str(montage), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["n_images"] == 32
    ranked = [r["image"].rsplit("/", 1)[-1] for r in doc["outliers"]]
    assert set(ranked[:2]) == {"noise.png", "a_one.png"}
    assert doc["outliers"][0]["error"] >= doc["outliers"][-1]["error"] > doc["cut"]
    assert montage.exists() and doc["montage"] == str(montage)
    code, out, _ = run(capsys, "outliers", "0", str(folder), "--registry", str(trained), "--quantile", "0.97")
    assert code == 1
    # in words: why each is listed, and, fewer than --top past the cut, what shows more
    n = doc["n_outliers"]
    code, out, _ = run(capsys, "outliers", "0", str(folder), "--registry", str(trained), "--quantile", "0.99",
                       "--montage", str(montage), "--top", str(n + 5))
    assert code == 0
    assert out.startswith(f"{n} of 32 images {'is' if n == 1 else 'are'} past the 0.99 quantile of the held-out "
                          "errors of class '0'")
    assert "listed because its error is past the cut" in out
    table = out.splitlines()[2].split()
    assert table == ["rank", "image", "error", "times", "the", "cut", "complexity-corrected", "z"]
    assert f"past the cut, fewer than --top {n + 5}; the montage shows " in out
    assert re.search(r"to see more, lower --quantile: 0\.\d+ would list \d+", out) or "no lower quantile" in out
    code, out, _ = run(capsys, "outliers", "0", str(folder), "--registry", str(trained), "--quantile", "0.99",
                       "--montage", str(montage), "--top", "1")
    assert code == 0 and f"the montage shows the worst 1 of the {n} (--top)" in out


def test_remove_takes_several_classes_and_removes_none_when_one_is_missing(tmp_path, capsys):
    from bank import Registry
    from bank.kinds.pca import PCAModel

    rng = np.random.default_rng(0)
    reg = Registry(tmp_path / "reg")
    for c in ("0", "1", "2", "3"):
        reg.register(c, PCAModel(n_components=2).fit(rng.random((12, 8, 8))))
    code, _, err = run(capsys, "remove", "0", "9", "--registry", str(reg.root))
    assert code == 1 and "no class '9'" in err and "nothing removed" in err
    assert reg.classes() == ["0", "1", "2", "3"]
    code, out, _ = run(capsys, "remove", "0", "1", "2", "--registry", str(reg.root), "--json")
    assert code == 0 and [d["class"] for d in json.loads(out)["classes"]] == ["0", "1", "2"]
    assert reg.classes() == ["3"]
    code, _, err = run(capsys, "remove", "3", "1", "--version", "1", "--registry", str(reg.root))
    assert code != 0 and "one version of one class" in err


def test_training_help_reads_each_kinds_declarations(capsys):
    """--help says each kind and the defaults of the options it takes from the kinds themselves (one
    declaration), not from copies in the command line."""
    from bank.kinds import KINDS, kind_class, option_defaults

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = re.sub(r"(\w-) (\w)", r"\1\2", " ".join(capsys.readouterr().out.split()))  # "one- class": wrapped
    for k in KINDS:
        assert f"{k}: {' '.join(kind_class(k).summary.split())}" in text
    epochs = option_defaults("epochs")
    assert epochs["geotrans"] != epochs["autoencoder"]
    said = re.search(r"most epochs; early stopping may end sooner \(default: ([^)]*)\)", text).group(1)
    for part in said.split("; "):  # "30 for autoencoder; 60 for ae-hog, geotrans": each kind its own default
        value, kinds = part.split(" for ")
        assert all(str(epochs[k]) == value for k in kinds.split(", ")), said
    assert set(epochs) == {k for part in said.split("; ") for k in part.split(" for ")[1].split(", ")}
