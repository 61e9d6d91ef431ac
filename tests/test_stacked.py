"""A bank of dense autoencoders of one shape, stacked in NumPy: the same errors as each class alone."""

import io
import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bank import AutoencoderModel, InputSpec, Registry, RegistryError, Router, fit_error_stats
from bank.digest import sha256_file
from bank.nets import stacked
from bank.nets.stacked import DenseNet, GroupErrors, Stacked


def random_detector(seed: int, architecture: str = "dense", params: dict | None = None) -> AutoencoderModel:
    """An 8x8 autoencoder "fitted" without training: random weights, statistics of random errors."""
    import keras

    from bank.nets import models

    keras.utils.set_random_seed(seed)
    det = AutoencoderModel(verbose=0)
    det.spec_ = InputSpec(8, 8, "gray")
    det.architecture_, det.params_ = architecture, dict(params or {"hidden": [64], "latent_dim": 8})
    det.model_ = models.build(architecture, (8, 8, 1), det.params_)
    det.training_, det.history_ = {"warnings": []}, {}
    rng = np.random.default_rng(seed)
    det.stats_ = fit_error_stats(rng.lognormal(np.log(0.08), 0.2, 200), rng.lognormal(np.log(2.0), 0.2, 200))
    return det


def parts(router: Router) -> dict[tuple[int, ...], str]:
    """How the router's one group (one spec, one kind) is scored: columns -> "Stacked", or "function" for
    today's way (:func:`bank.nets.runtime.error_fn`)."""
    (spec,) = router.groups
    ((_, fn),) = router._scorers(spec)
    assert isinstance(fn, GroupErrors)
    return {tuple(cols): type(f).__name__ for cols, f in fn.parts}


def errors_by_runtime(reg: Registry, x: np.ndarray) -> dict[str, np.ndarray]:
    return {rt: Router.from_registry(reg, runtime=rt).errors(x) for rt in ("auto", "litert", "keras")}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Registry:
    """8x8 classes of one spec: three dense of the default shape, one dense of another, one conv."""
    reg = Registry(tmp_path_factory.mktemp("mixed"))
    for k in range(3):
        reg.register(f"d{k}", random_detector(k))
    reg.register("small", random_detector(10, params={"hidden": [32], "latent_dim": 4}))
    reg.register("conv", random_detector(11, "conv", {"filters": [8, 16], "latent_dim": 4}))
    return reg


def test_registration_writes_the_dense_weights_checked(bank_registry):
    e = bank_registry.entry("0")
    dense = e.card["params"]["dense"]
    assert dense["file"] == "model-dense.npy" and dense["max_rel_diff"] < 1e-5
    assert dense["layers"] == [[64, "relu"], [8, "linear"], [64, "relu"], [64, "sigmoid"]]
    assert e.card["files"]["model-dense.npy"] == sha256_file(e.path / "model-dense.npy")
    assert np.load(e.path / "model-dense.npy").shape == ((64 * 64 + 64) * 2 + 64 * 8 + 8 + 8 * 64 + 64,)


@pytest.mark.parametrize("n", [1, 5, 300])  # one image, a few, more than a chunk (ROWS)
def test_a_bank_of_dense_classes_is_stacked_with_the_errors_of_each_class_alone(bank_registry, digits, n):
    x = digits[0][1400 : 1400 + n]
    router = Router.from_registry(bank_registry)
    assert parts(router) == {(0, 1, 2): "Stacked"}  # every class in one stack
    got = errors_by_runtime(bank_registry, x)
    np.testing.assert_allclose(got["auto"], got["litert"], rtol=1e-5)
    np.testing.assert_allclose(got["auto"], got["keras"], rtol=1e-5)
    for k, c in enumerate(router.classes):  # each class alone: its LiteRT model
        np.testing.assert_allclose(got["auto"][:, k], bank_registry.load_detector(c).reconstruction_error(x),
                                   rtol=1e-5)
    assert router.score(x).labels == Router.from_registry(bank_registry, runtime="litert").score(x).labels


def test_a_group_with_a_conv_class_and_another_shape_still_answers(mixed):
    router = Router.from_registry(mixed)
    assert router.classes == ["conv", "d0", "d1", "d2", "small"]
    assert parts(router) == {(1, 2, 3): "Stacked", (4,): "Stacked", (0,): "function"}  # conv: LiteRT, as before
    assert "dense" not in mixed.entry("conv").card["params"]
    x = np.random.default_rng(0).random((37, 8, 8), dtype=np.float32)
    got = errors_by_runtime(mixed, x)
    np.testing.assert_allclose(got["auto"], got["litert"], rtol=1e-5)
    np.testing.assert_allclose(got["auto"], got["keras"], rtol=1e-5)


def test_many_classes_run_in_blocks_and_chunks_with_each_class_s_errors(monkeypatch):
    """Classes in blocks and images in chunks (memory bounded): the same errors as one class at a time."""
    rng = np.random.default_rng(0)
    widths, acts = [64, 16, 64], ("tanh", "linear", "sigmoid")

    def net() -> DenseNet:
        ins = [64, *widths[:-1]]
        return DenseNet((8, 8, 1), tuple(rng.normal(0, 0.3, (i, o)).astype(np.float32) for i, o in zip(ins, widths)),
                        tuple(rng.normal(0, 0.1, o).astype(np.float32) for o in widths), acts)

    nets = [net() for _ in range(7)]
    x = rng.random((300, 8, 8, 1), dtype=np.float32)

    def alone(n: DenseNet) -> np.ndarray:  # float64, layer by layer
        h = x.reshape(len(x), -1).astype(np.float64)
        for k, b, a in zip(n.kernels, n.biases, n.activations):
            h = h @ k + b
            h = np.tanh(h) if a == "tanh" else 1 / (1 + np.exp(-h)) if a == "sigmoid" else h
        return np.mean((h - x.reshape(len(x), -1)) ** 2, axis=1)

    monkeypatch.setattr(stacked, "BLOCK_FLOATS", 2 * stacked.ROWS * 64)  # two classes a block
    s = Stacked(nets)
    assert len(s._blocks) == 4 and s.macs == 7 * (64 * 64 + 64 * 16 + 16 * 64)
    serial = s(x)
    np.testing.assert_allclose(serial, np.stack([alone(n) for n in nets], axis=1), rtol=1e-5)
    np.testing.assert_allclose(s(x[:1]), serial[:1], rtol=1e-6)
    monkeypatch.setattr(stacked, "PARALLEL_MACS", 0)  # the chunks among two threads: the very same numbers
    monkeypatch.setattr(stacked, "cores", lambda: 2)
    np.testing.assert_array_equal(s(x), serial)


def _copy(reg: Registry, tmp_path) -> Registry:
    shutil.copytree(reg.root, tmp_path / "reg")
    return Registry(tmp_path / "reg")


def test_an_activation_it_does_not_know_answers_as_before(bank_registry, digits, tmp_path):
    reg = _copy(bank_registry, tmp_path)
    e = reg.entry("1")
    card = json.loads((e.path / "card.json").read_text())
    card["params"]["dense"]["layers"][0][1] = "gelu"  # a newer bank's activation, say
    (e.path / "card.json").write_text(json.dumps(card))
    router = Router.from_registry(reg)
    assert parts(router) == {(0, 2): "Stacked", (1,): "function"}
    x = digits[0][1400:1420]
    np.testing.assert_allclose(router.errors(x), Router.from_registry(reg, runtime="litert").errors(x), rtol=1e-5)


@pytest.mark.parametrize("how", ["file", "layout"])
def test_broken_dense_weights_are_refused(bank_registry, tmp_path, how):
    reg = _copy(bank_registry, tmp_path)
    e = reg.entry("7")
    card = json.loads((e.path / "card.json").read_text())
    if how == "file":  # another array, its checksum fixed too
        np.save(e.path / "model-dense.npy", np.zeros(10, np.float64))
        card["files"]["model-dense.npy"] = sha256_file(e.path / "model-dense.npy")
    else:
        card["params"]["dense"]["layers"][1][0] = 9
    (e.path / "card.json").write_text(json.dumps(card))
    with pytest.raises(RegistryError, match="class '7' version 1: model-dense.npy: the dense weights are not"):
        reg.load_detector("7")
    reg.load_detector("7", runtime="litert")  # the other runtimes never read it
    assert Router.from_registry(reg, skip_broken=True).classes == ["0", "1"]


def test_a_dense_network_round_trips_and_a_conv_network_is_not_one():
    from bank.nets import models

    shape = (8, 8, 1)
    dense = stacked.from_keras(models.build("dense", shape, {"hidden": [16], "latent_dim": 4}), shape)
    back = DenseNet.from_bytes(dense.to_bytes(), dense.layout(), shape)
    assert back.signature == dense.signature and all(np.array_equal(a, b) for a, b in zip(back.kernels, dense.kernels))
    buf = io.BytesIO()  # the same vector behind another .npy header (another NumPy's): read too
    np.lib.format.write_array(buf, np.load(io.BytesIO(dense.to_bytes())), version=(2, 0))
    other = DenseNet.from_bytes(buf.getvalue(), dense.layout(), shape)
    assert all(np.array_equal(a, b) for a, b in zip(other.biases, dense.biases))
    assert stacked.from_keras(models.build("conv", shape, {"filters": [8, 16], "latent_dim": 4}), shape) is None


def test_answering_a_stacked_bank_imports_no_tensorflow(bank_registry, digits, tmp_path):
    np.save(tmp_path / "x.npy", digits[0][1400:1410])
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        from bank import Registry, Router
        r = Router.from_registry(Registry({str(bank_registry.root)!r}))
        print(r.classify(np.load({str(tmp_path / 'x.npy')!r})))
        (spec,) = r.groups
        print("STACKED", [type(f).__name__ for _, f in r._scorers(spec)[0][1].parts])
        print("HEAVY", sorted(m for m in ("tensorflow", "keras", "h5py") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "STACKED ['Stacked']" in out.stdout and "HEAVY []" in out.stdout


def test_the_classes_benchmark_runs_both_ways(tmp_path):
    """benchmarks/classes.py, tiny: two bank sizes, before and after, the same errors, no TensorFlow answering."""
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "classes.py"
    proc = subprocess.run([sys.executable, str(script), "--counts", "2,3", "--epochs", "1", "--calls", "3", "--json"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert [(r["classes"], r["way"]) for r in out["rows"]] == [(2, "before"), (2, "after"), (3, "before"), (3, "after")]
    assert all(r["max_rel_diff"] < 1e-5 and not r["tensorflow_imported"] and r["img_per_s"] > 0 for r in out["rows"])
    assert out["macs_per_class_image"] == 64 * 64 * 2 + 64 * 8 * 2 and out["scaling_of"] == [2, 3]


def test_one_blas_thread_restores_the_process_whatever_order_callers_leave_in():
    """The BLAS limit is the process's: caller A in, B in, A out, B out (two threads of a server) must leave
    BLAS as it was, not on one thread for good (every later product of the process would run on one core),
    and B, still inside when A leaves, keeps its one thread."""
    from threadpoolctl import threadpool_info

    import bank.machine as machine

    machine._BLAS.clear()  # a controller made now knows every BLAS library loaded by the tests before this one

    def blas() -> list[int]:
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before = blas()
    a, b = machine.one_blas_thread(), machine.one_blas_thread()
    a.__enter__()
    b.__enter__()
    both = blas()
    a.__exit__(None, None, None)
    b_alone = blas()
    b.__exit__(None, None, None)
    assert all(n == 1 for n in both + b_alone), (both, b_alone)
    assert blas() == before
