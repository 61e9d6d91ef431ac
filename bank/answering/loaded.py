"""A router over a registry: loading its classes' active versions, and reloading them while serving.

Loading is kept apart from scoring (:mod:`bank.answering.router`): what came from where (the registry, the
runtime, each class's version and model, the broken classes left out) is a :class:`Source` the router holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..registry.cards import RegistryError


@dataclass
class Source:
    """Where a router's models came from."""

    registry: object
    runtime: str
    all_classes: bool  #: every class of the registry (a reload picks up new ones and drops removed ones)
    versions: dict[str, tuple[int, str]] = field(default_factory=dict)  #: class -> (version, model id)
    skipped: list[tuple[str, str]] = field(default_factory=list)  #: (class, reason) left out or kept old


def load(router_cls, registry, classes: Sequence[str] | None = None, *, skip_broken: bool = False,
         runtime: str = "auto", **kwargs):
    """Load the active version of every class (or of ``classes``) into a ``router_cls``.

    A broken entry (bad checksum, card or model) raises :class:`~bank.registry.cards.RegistryError` naming it,
    unless ``skip_broken``: then the rest load and the router's ``skipped`` lists ``(class, reason)`` for each
    one left out.
    """
    if not registry.root.is_dir():
        raise registry.missing()
    names = list(classes) if classes else registry.classes()
    return _loaded(router_cls, registry, names, not classes, skip_broken, None, runtime, kwargs)


def reload(router):
    """A new router over the registry's current active versions; ``router`` is left as it was.

    Work in flight finishes on the old router. A class whose new active entry is broken keeps the version
    already loaded (and is listed in the new router's ``skipped``); a class removed from the registry is
    dropped when the router serves all classes.
    """
    from ..errors import InputError

    src = router.source
    if src is None:
        raise InputError("reload needs a router made by Router.from_registry")
    names = src.registry.classes() if src.all_classes else router.classes
    kwargs = {"threshold": router.threshold, "method": router.method, "margin": router.margin,
              "complexity_threshold": router.complexity_threshold, "batch_size": router.batch_size,
              "compare": router.compare}
    return _loaded(type(router), src.registry, names, src.all_classes, True, router, src.runtime, kwargs)


def _loaded(router_cls, registry, names, all_classes, skip_broken, previous, runtime, kwargs):
    detectors, versions, skipped = {}, {}, []
    for n in names:
        try:
            e = registry.entry(n)
            key = (e.version, e.model_id)
            if previous is not None and previous.versions.get(n) == key:
                detectors[n] = previous.detectors[n]  # unchanged: no need to load it again
            else:
                detectors[n] = registry.load_entry(e, runtime)  # the card just read: the version key's own
            versions[n] = key
        except RegistryError as err:
            if previous is not None and n in previous.detectors:
                detectors[n], versions[n] = previous.detectors[n], previous.versions[n]
                skipped.append((n, f"{err}; still using version {versions[n][0]}"))
            elif skip_broken:
                skipped.append((n, str(err)))
            else:
                raise
    if not detectors and skipped:
        raise RegistryError("no class could be loaded: " + "; ".join(r for _, r in skipped))
    router = router_cls(detectors, **kwargs)
    router.source = Source(registry, runtime, all_classes, versions, skipped)
    return router
