"""Was a training finished? A verdict on the monitored loss curve, for people and for scripts.

Early stopping keeps the epoch with the lowest validation loss. On a small class that can be an
epoch from the first few, kept because the loss was still jumping about (batch statistics not yet
settled, a learning rate too high for the data) when patience ran out; or the run can end at its
epoch cap with the loss still falling. Either way a longer training would give a better model. The
verdict goes into the card's training record (``training.convergence``) and, when it is not
``"settled"``, a warning that says what to try.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: The kept epoch counts as early when it is in the first third of the epochs run (or the first 3).
EARLY_SHARE = 1 / 3

#: After the kept epoch, the validation loss "moved" when it strayed this far from the best, relatively.
MOVING = 0.25

#: At the epoch cap, the loss is "still falling" when its last quarter of epochs (at least 3) took off
#: this much of it, relatively.
FALLING = 0.10

SETTLED, STOPPED_EARLY, STILL_FALLING = "settled", "stopped early", "still falling"


def assess(val_loss: Sequence[float], epochs: int, patience: int) -> dict:
    """The verdict on one training's monitored loss per epoch (``val_loss``), run with at most
    ``epochs`` epochs and early-stopping ``patience``.

    Returns ``{"status", "kept_epoch", "epochs_run", "change"}``: ``status`` one of ``"settled"``,
    ``"stopped early"`` (the kept epoch is early and the loss moved by ``change`` after it, relatively,
    before patience ran out) or ``"still falling"`` (the run hit ``epochs`` and its last quarter of
    epochs lowered the loss by ``change`` below all before); ``kept_epoch`` counted from 1, None without a finite loss.
    ``change`` is None for a settled run: only a test that fired has a change to report (a 0 would read as a
    measurement).
    """
    val = [float(v) for v in val_loss]
    finite = [(v, i) for i, v in enumerate(val) if math.isfinite(v)]
    n = len(val)
    out = {"status": SETTLED, "kept_epoch": None, "epochs_run": n, "change": None}
    if not finite:
        return out
    best, at = min(finite)
    out["kept_epoch"] = at + 1
    after = [v for v in val[at + 1 :] if math.isfinite(v)]
    if n < epochs and after and at + 1 <= max(3, math.floor(n * EARLY_SHARE)):
        change = max(abs(v - best) for v in after) / max(best, 1e-12)
        if change > MOVING:
            out.update(status=STOPPED_EARLY, change=round(change, 4))
            return out
    if n >= epochs:
        k = max(3, n // 4)
        before = [v for v in val[: max(0, n - k)] if math.isfinite(v)]
        if before and at >= n - k:  # the best is in the last quarter: by how much did that quarter lower it?
            change = (min(before) - best) / max(best, 1e-12)
            if change > FALLING:
                out.update(status=STILL_FALLING, change=round(change, 4))
    return out


def advice(verdict: dict, epochs: int, patience: int, loss: str = "early-stopping loss") -> str | None:
    """What to tell a person about ``verdict`` (from :func:`assess`), with what to try; None when settled.
    ``loss``: the curve assessed (a kind without early stopping has its training loss)."""
    kept, n, change = verdict["kept_epoch"], verdict["epochs_run"], verdict["change"]
    if verdict["status"] == STOPPED_EARLY:
        return (f"training kept epoch {kept} of {n}: the {loss} was still moving ({change:.0%} off its best "
                f"after it) when early stopping ended the run, so a longer training would likely give a better "
                f"model; try --patience {max(2 * patience, 15)} (or more images of the class)")
    if verdict["status"] == STILL_FALLING:
        return (f"the {loss} was still falling at the last epoch ({change:.0%} over the last "
                f"{max(3, n // 4)} epochs): the model has not finished learning its class; --epochs {2 * epochs} "
                f"lowers its error, but may teach it other classes too: compare with bank evaluate before "
                f"keeping it")
    return None
