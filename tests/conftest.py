"""Shared fixtures: small real data, and one tiny trained bank per test session."""

from __future__ import annotations

import numpy as np
import pytest

from bank import AutoencoderModel, Registry


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's 8x8 digits as float images in [0, 1] and labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target


def tiny_detector(images, **kw) -> AutoencoderModel:
    """A quick detector: few epochs, fixed seed, silent."""
    kw = {"epochs": 8, "batch_size": 32, "seed": 0, "verbose": 0, **kw}
    return AutoencoderModel(**kw).fit(images)


@pytest.fixture(scope="session")
def bank_registry(tmp_path_factory, digits):
    """A registry holding digit classes 0, 1 and 7, trained on the first 1,400 digits."""
    images, labels = digits
    reg = Registry(tmp_path_factory.mktemp("registry"))
    for d in (0, 1, 7):
        reg.register(str(d), tiny_detector(images[:1400][labels[:1400] == d]))
    return reg


def classify_in_a_fresh_process(registry_root, images: np.ndarray, folder) -> str:
    """The stdout of a fresh Python process that loads the registry's bank, classifies ``images`` and prints
    ``HEAVY [...]``: the heavy libraries (TensorFlow, Keras, scikit-learn) it imported to answer."""
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    path = Path(folder) / "x.npy"
    np.save(path, images)
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        from bank import Registry, Router
        router = Router.from_registry(Registry({str(registry_root)!r}))
        print(router.classify(np.load({str(path)!r}))[:3])
        print("HEAVY", sorted(m for m in ("tensorflow", "keras", "sklearn") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout
