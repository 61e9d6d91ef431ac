"""What every command shares: output, argument types, option groups, and the error a command reports."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable

from ..io.decoding import MAX_PIXELS, MAX_PIXELS_ENV
from ..errors import BankError
from ..registry.loading import RUNTIMES
from ..registry.store import Registry
from ..verdict.stats import DEFAULT_COMPLEXITY, DEFAULT_MARGIN, DEFAULT_THRESHOLD, STATS_METHODS

#: Set to 1 to see the traceback of every error (as --debug does).
DEBUG_ENV = "BANK_DEBUG"
#: The exit status of a bug in bank (sysexits' EX_SOFTWARE), apart from 1 (an error of the input or the machine).
EXIT_BUG = 70


class CommandError(BankError):
    """A failure to report as one line on stderr, exit status 1; ``extra`` goes into the ``--json`` document
    beside the error (such as the inputs skipped, with their reasons)."""

    def __init__(self, message: str, **extra: object):
        super().__init__(message)
        self.extra = extra


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def emit_json(obj: object) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


def table(rows: list[list[object]], header: list[str]) -> str:
    cells = [[str(c) for c in header]] + [[fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"
    return "" if v is None else str(v)


def positive(text: str) -> float:
    """An argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def fdr_rate(text: str) -> float:
    """An argparse type: a false discovery rate, strictly between 0 and 1."""
    value = positive(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a rate strictly between 0 and 1, such as 0.1, got {text!r}")
    return value


def optional(text: str) -> float | None:
    """An argparse type: a positive number, or 'none' to turn a test off."""
    if text.lower() == "none":
        return None
    try:
        return positive(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'none', got {text!r}") from None


def pixels(text: str) -> int:
    """An argparse type: a whole number of pixels, such as 64000000 or 6.4e7."""
    from ..io.decoding import check_max_pixels

    try:
        return check_max_pixels(text, "--max-pixels")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def registry_of(args: argparse.Namespace) -> Registry:
    return Registry(getattr(args, "registry", None))


def report_skipped(skipped: list[tuple[str, str]]) -> None:
    if skipped:
        say(f"skipped {len(skipped)} input(s) that could not be read:")
        for name, reason in skipped:
            say(f"  {name}: {reason}")


def classes_option(args: argparse.Namespace) -> list[str] | None:
    """The class names of --classes, or None for every class."""
    if args.classes is None:
        return None
    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    if not classes:
        raise CommandError("--classes: expected class names separated by commas, got none")
    return classes


def add_runtime(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--runtime", choices=RUNTIMES, default="auto",
                    help="run the models with LiteRT (no TensorFlow import; written at registration), with Keras "
                         "(TensorFlow, the reference), or auto: LiteRT where the class has it, many dense classes of one "
                         "shape stacked in NumPy (default)")


def add_max_pixels(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--max-pixels", type=pixels, metavar="N", help=f"refuse (and name) an image that would "
                    f"decode to more than N pixels; images are decoded no larger than the bank needs, a JPEG "
                    f"at the scale it needs (default ${MAX_PIXELS_ENV}, else {MAX_PIXELS})")


def add_tests(sp: argparse.ArgumentParser, skip_broken: bool = True, runtime: bool = True,
              compare: bool = True) -> None:
    if runtime:
        add_runtime(sp)
    sp.add_argument("--threshold", type=positive, default=DEFAULT_THRESHOLD,
                    help=f"a class flags an image when its test z exceeds this: the complexity-corrected z of the "
                         f"error under the default --method (default {DEFAULT_THRESHOLD:g})")
    sp.add_argument("--method", choices=STATS_METHODS, default=STATS_METHODS[0],
                    help="z of the log error given the input's complexity (complexity, default), of the log "
                         "error (lognormal) or of the raw error (gaussian, the seeds')")
    sp.add_argument("--margin", type=optional, default=DEFAULT_MARGIN, metavar="M",
                    help=f"a class also flags an image when another class's log error is lower by more than M "
                         f"(default {DEFAULT_MARGIN:g}); 'none' turns this off")
    sp.add_argument("--complexity", type=optional, default=DEFAULT_COMPLEXITY, metavar="Z",
                    help=f"a class also flags an image whose input complexity z is beyond +-Z: its log complexity "
                         f"(zlib bits per value) more than Z standard deviations from the class's images' (default "
                         f"{DEFAULT_COMPLEXITY:g}): a blank page is no digit; 'none' turns this off")
    if compare:
        sp.add_argument("--compare", choices=("auto", "raw", "relative"), default="auto",
                        help="what the nearest class and the margin compare: raw errors, or relative ones (each "
                             "log error centred and scaled by its unit's classes, for classes scored in different "
                             "units); auto (default): "
                             "raw when every class scores in per-pixel squared error (autoencoder, pca), else "
                             "relative (a hog-ocsvm class is in the bank)")
    sp.add_argument("--classes", metavar="A,B,...", help="use these classes only")
    if skip_broken:
        sp.add_argument("--skip-broken", action="store_true", help="load the classes that are intact and say "
                        "which were skipped (default: refuse to run when any class is broken)")


class LazyHelp(str):
    """An option's help text made only when ``--help`` shows it (:class:`HelpFormatter`): one that reads every
    kind's declarations would otherwise cost each command's start (a fresh ``bank classify``) their imports."""

    def __new__(cls, make: Callable[[], str]) -> LazyHelp:
        text = super().__new__(cls, "(help)")  # not empty: argparse shows only a help that has text
        text.make = make
        return text


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, with :class:`LazyHelp` texts made when shown."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if isinstance(action.help, LazyHelp):
            return action.help.make()
        return super()._get_help_string(action)


def pairs(d: dict) -> str:
    """A card's small object as people read it: ``filters 32,64; latent_dim 16``."""
    def value(v: object) -> str:
        return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)

    return "; ".join(f"{k} {value(v)}" for k, v in d.items()) or "-"
