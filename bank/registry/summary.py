"""What ``bank show`` tells about one registry entry, as data: its card read for people.

:func:`entry_summary` reads an entry, checks its model files, and works out
from its card what a person wants to see: the model, the training (and whether
it finished), the error statistics and the error past which the class flags an
image under each rule at the default settings. The command line only formats
it; a program gets the same figures without parsing text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..verdict import stats as st
from .cards import Entry, RegistryError
from ..kinds import kind_class

if TYPE_CHECKING:
    from .store import Registry

#: Skipped training files named in a summary; the rest are counted.
SKIPPED_SHOWN = 5


@dataclass(frozen=True)
class ComplexityFit:
    """The class's input complexity (zlib bits per value) and how its log error follows it."""

    typical: float  #: bits per value of a typical image of the class
    line_fitted: bool  #: enough held-out images (``st.MIN_COMPLEXITY_SAMPLES``) to fit the line
    slope: float  #: change of the log error per log bit
    residual_std: float  #: spread of the log error about the line
    accepted: tuple[float, float]  #: bits per value the default complexity test accepts, low and high


@dataclass(frozen=True)
class EntrySummary:
    """One entry's card, worked out for people (see :func:`entry_summary`)."""

    entry: Entry
    broken: str | None  #: why a model file fails its checksum; None when sound
    created: str | None
    model: str  #: what the model is, as its kind says it ("dense autoencoder", "pca")
    model_params: dict  #: its settings worth showing, as its kind picks them
    training: dict  #: the card's training record
    resumed_from_epoch: int  #: > 0: the training went on from an interrupted run
    convergence: str  #: "settled", else how the training did not finish
    skipped_count: int  #: unreadable files left out of the training
    skipped_shown: list[str]  #: the first ``SKIPPED_SHOWN`` of them
    complexity: ComplexityFit | None  #: None: registered before complexity statistics
    threshold: float  #: the default z past which an image is flagged
    complexity_threshold: float  #: the default input-complexity z test
    margin: float  #: the default margin test in a bank
    margin_share: float  #: how much lower another class's error is at that margin (1 - e^-margin)
    error_cuts: dict[str, float]  #: per rule ("complexity" when fitted, "lognormal", "gaussian"): the error flagged past
    warnings: list[str]  #: the training's warnings
    made_with: dict  #: the software versions that wrote the entry
    checksums: list[tuple[str, str]]  #: (file, sha256) of the model files shown

    @property
    def stats(self) -> st.ErrorStats:
        return self.entry.stats

    def to_json(self) -> dict:
        """What ``bank show --json`` prints: the card as stored, with ``broken``."""
        return {**self.entry.card, "broken": self.broken}


def entry_summary(registry: Registry, name: str, version: int | None = None) -> EntrySummary:
    """The summary of class ``name`` (its active version by default), its model files checked:
    a file that fails is told in ``broken``, not raised. A missing class or an unreadable card raises
    :class:`RegistryError`."""
    e = registry.entry(name, version)
    try:
        registry.check_model(e)
        broken = None
    except RegistryError as err:
        broken = str(err)
    return summarize(e, broken)


def summarize(e: Entry, broken: str | None = None) -> EntrySummary:
    """The summary of entry ``e`` from its card alone (``broken``: the result of its checksum check)."""
    c, s = e.card, e.stats
    model, params = kind_class(e.kind).describe(dict(c.get("params") or {}))
    t = c.get("training", {})
    skipped = t.get("skipped_files") or {}
    count = skipped.get("count") or 0
    threshold = st.DEFAULT_THRESHOLD
    cuts = {}
    complexity = None
    if s.has_complexity:
        lo, hi = (math.exp(s.complexity_mean + sign * st.DEFAULT_COMPLEXITY * s.complexity_std) for sign in (-1, 1))
        complexity = ComplexityFit(typical=math.exp(s.complexity_mean), line_fitted=s.n >= st.MIN_COMPLEXITY_SAMPLES,
                                   slope=s.complexity_slope, residual_std=s.residual_std, accepted=(lo, hi))
        cuts["complexity"] = st.error_cut(s, threshold, "complexity")
    cuts["lognormal"] = st.error_cut(s, threshold, "lognormal")
    cuts["gaussian"] = st.error_cut(s, threshold, "gaussian")
    return EntrySummary(
        entry=e,
        broken=broken,
        created=c.get("created"),
        model=model,
        model_params=params,
        training=t,
        resumed_from_epoch=t.get("resumed_from_epoch") or 0,
        convergence=(t.get("convergence") or {}).get("status", "settled"),
        skipped_count=count,
        skipped_shown=[f["image"] for f in skipped.get("files", [])[:SKIPPED_SHOWN]] if count else [],
        complexity=complexity,
        threshold=threshold,
        complexity_threshold=st.DEFAULT_COMPLEXITY,
        margin=st.DEFAULT_MARGIN,
        margin_share=1 - math.exp(-st.DEFAULT_MARGIN),
        error_cuts=cuts,
        warnings=list(c.get("training", {}).get("warnings") or []),
        made_with=c.get("versions") or {},
        checksums=list(e.model_files + e.shared_files),
    )
