"""The verdict on a training's loss curve (bank.nets.convergence): pure, no TensorFlow."""

import numpy as np
import pytest

from bank.nets.convergence import SETTLED, STILL_FALLING, STOPPED_EARLY, advice, assess


def test_the_newcomers_curve_is_stopped_early():
    # the circle model: epoch 2 kept, the loss rising to 0.196 when patience 5 ran out at epoch 7
    val = [0.09, 0.078, 0.11, 0.15, 0.17, 0.19, 0.196]
    v = assess(val, epochs=30, patience=5)
    assert v["status"] == STOPPED_EARLY and v["kept_epoch"] == 2 and v["epochs_run"] == 7
    assert v["change"] > 1.4
    text = advice(v, 30, 5)
    assert "kept epoch 2 of 7" in text and "--patience 15" in text


def test_a_finished_training_is_settled():
    val = [0.05 * 0.8 ** i for i in range(12)] + [0.0035, 0.0036, 0.0035, 0.0036, 0.0036, 0.0037]
    v = assess(val, epochs=30, patience=5)
    assert v["status"] == SETTLED and advice(v, 30, 5) is None
    # the kept epoch late in the run is settled whatever the loss did early on
    v = assess([0.2, 0.5, 0.1, 0.05, 0.04, 0.039, 0.0395, 0.04, 0.041, 0.04, 0.04], epochs=30, patience=5)
    assert v["status"] == SETTLED


def test_an_early_epoch_with_a_flat_loss_after_it_is_settled():
    # nothing left to learn: the best came early and the loss stayed put
    v = assess([0.010, 0.0100, 0.0101, 0.0102, 0.0101, 0.0102, 0.0101], epochs=30, patience=5)
    assert v["status"] == SETTLED


def test_the_cap_reached_with_the_loss_still_falling():
    val = [0.1 * 0.93 ** i for i in range(30)]
    v = assess(val, epochs=30, patience=5)
    assert v["status"] == STILL_FALLING and v["kept_epoch"] == 30
    assert "--epochs 60" in advice(v, 30, 5)
    # at the cap but flat: settled
    flat = [0.1 * 0.8 ** i for i in range(15)] + [0.0044] * 15
    assert assess(flat, epochs=30, patience=5)["status"] == SETTLED


def test_no_loss_at_all():
    assert assess([], 30, 5) == {"status": SETTLED, "kept_epoch": None, "epochs_run": 0, "change": None}
    assert assess([float("nan")] * 3, 30, 5)["kept_epoch"] is None


def test_too_few_epochs_for_a_verdict_on_the_trend():
    # two epochs, the second lower: no "last quarter" to judge by
    assert assess([0.05, 0.01], epochs=2, patience=5)["status"] == SETTLED
    assert assess([0.05, 0.03, 0.01], epochs=3, patience=5)["status"] == SETTLED


def test_a_kind_that_runs_every_epoch_gets_the_verdict_on_its_training_loss():
    from bank.kinds.geotrans import GeoTransModel

    curve = [1.0 - 0.012 * i for i in range(60)]  # still falling at epoch 60: the newcomer's geotrans curve
    verdict = assess(curve, 60, 60)
    assert verdict["status"] == "still falling"
    assert advice(verdict, 60, 60, "training loss").startswith("the training loss was still falling")

    class Falling(GeoTransModel):  # the kind's own fit, on a network that "learnt" this curve
        def _fit_core(self, x):
            self.history_ = {"loss": curve, "accuracy": [0.9] * 60}

        def _scores(self, x):
            return np.linspace(0.1, 1.0, len(x))

    with pytest.warns(UserWarning, match="the training loss was still falling"):
        model = Falling(epochs=60).fit(np.random.default_rng(0).random((40, 8, 8)))
    assert model.training_["convergence"]["status"] == "still falling"
