"""What the command line, the server's page and the report say about a bank's answer, in words.

The flag rule in words, which tests flag an image (``FLAG (margin)``), what ``bank outliers`` says around its
list, and the warnings a bank's trainings left. Kept apart from the figures (:mod:`bank.reports.evaluate`) so that
answering (``bank classify``, ``bank score``, the server) imports no SciPy, scikit-learn or TensorFlow: a
fresh ``bank classify`` stays fast (tests/test_cli.py checks what it imports).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..verdict import stats as st
from ..verdict.decision import BankResult

#: The distinct names of the flag rule's three parts, as every message, table and page says them. The error's
#: test is named by its method (stats.METHOD_LABELS: "complexity-corrected z" by default, the z of the error given
#: the input's complexity); the third test is the *input complexity z* (of the input's zlib bits per value), a
#: different quantity: never "complexity z" alone for either.
MARGIN_LABEL = "margin"
INPUT_COMPLEXITY_LABEL = st.INPUT_COMPLEXITY_LABEL


def describe_rule(method: str, threshold: float, margin: float | None, complexity_threshold: float | None,
                  compare: str = "raw") -> str:
    """The flag rule in words, as reports and the CLI print it: each part under its own name (``compare``:
    what the margin compares, raw errors or relative ones)."""
    parts = [f"{st.METHOD_LABELS[method]} of the error > {threshold:g}"]
    if margin and compare == "relative":
        parts.append(f"{MARGIN_LABEL} > {margin:g} (another class's relative log error lower by more than "
                     f"{margin:g}: the bank compares relative errors)")
    elif margin:
        parts.append(f"{MARGIN_LABEL} > {margin:g} (another class's error lower by more than "
                     f"{1 - math.exp(-margin):.0%})")
    if complexity_threshold:
        parts.append(f"|{INPUT_COMPLEXITY_LABEL}| > {complexity_threshold:g} (the input far simpler or busier "
                     "than the class's images)")
    return ", or ".join(parts)


def flag_tags(result: BankResult, i: int, k: int) -> list[str]:
    """Which parts of the rule make class ``k`` flag image ``i``, by their short names (empty when it does not):
    the error's z (named by its method), ``margin``, ``input complexity z``."""
    out = []
    if result.flag_error[i, k]:
        out.append(st.METHOD_LABELS[result.method_of(k)])
    if result.flag_margin[i, k]:
        out.append(MARGIN_LABEL)
    if result.flag_complexity is not None and result.flag_complexity[i, k]:
        out.append(INPUT_COMPLEXITY_LABEL)
    return out


def flag_cell(tags: Sequence[str]) -> str:
    """A table's flag column: ``FLAG (margin)``, or empty."""
    return f"FLAG ({', '.join(tags)})" if tags else ""


def training_warnings(detectors: dict) -> dict[str, list[str]]:
    """Per class, the warnings its training recorded on its card (``training.warnings``); classes without
    any are left out."""
    out = {}
    for c, det in detectors.items():
        warnings = (det.training_ or {}).get("warnings") or []
        if warnings:
            out[c] = [str(w) for w in warnings]
    return out


def unfinished_trainings(detectors: dict) -> dict[str, dict]:
    """Per class whose training did not settle (``training.convergence`` on its card, see
    :mod:`bank.nets.convergence`), the verdict: a machine-readable twin of the warning."""
    out = {}
    for c, det in detectors.items():
        verdict = (det.training_ or {}).get("convergence")
        if verdict and verdict.get("status") != "settled":
            out[c] = dict(verdict)
    return out


def describe_outliers(class_name: str, n_images: int, n_past: int, quantile: float, cut: float, top: int,
                      past: dict[str, int], montage: bool, z_label: str = st.METHOD_LABELS["complexity"]
                      ) -> tuple[list[str], list[str]]:
    """What ``bank outliers`` says above its list and below it: why the images are listed, how many, what the
    montage shows, and, when fewer than ``top`` are past the cut, which lower ``--quantile`` would show more
    (``past``: the count past each stored quantile, from :func:`past_each_quantile`)."""
    q = f"{quantile:g}"
    are = "image is" if n_past == 1 else "images are"
    before = [f"{n_past} of {n_images} images {'is' if n_past == 1 else 'are'} past the {q} quantile of the held-out "
              f"errors of class {class_name!r} (the cut, {cut:.5g}: {quantile:.1%} of the class's held-out images err "
              f"less); expected about {(1 - quantile) * n_images:.1f} if all are normal"]
    if n_past:
        before.append(f"{'it is' if n_past == 1 else 'each is'} listed because its error is past the cut ('times "
                      f"the cut': by how much); its {z_label} says how unusual the error is for the class"
                      + (", given how simple or busy the image is" if z_label == st.METHOD_LABELS["complexity"] else "")
                      + f" (the bank flags past {st.DEFAULT_THRESHOLD:g} by default)")
    after = []
    if n_past >= top:
        if montage:
            after.append(f"the montage shows the worst {top} of the {n_past} (--top)")
        return before, after
    shown = "" if not montage or not n_past else ("; the montage shows it" if n_past == 1 else
                                                  f"; the montage shows all {n_past}")
    after.append(f"{'no image is' if not n_past else f'only {n_past} {are}'} past the cut, fewer than --top {top}"
                 f"{shown}")
    lower = [(k, n) for k, n in past.items() if float(k) < quantile and n > n_past]
    if lower:
        after.append("to see more, lower --quantile: " + ", ".join(
            f"{k} would list {n}" for k, n in sorted(lower, key=lambda kn: -float(kn[0]))))
    else:
        after.append("no lower quantile the class keeps would list more: to its model, these images look like "
                     "the class's held-out ones")
    return before, after
