"""The ``bank`` command: a thin layer over the Python API, a module per command family.

Results go to stdout (a table, or one JSON document with ``--json``);
progress, warnings and skipped inputs go to stderr. Exit status: 0 on
success; 1 on an error of the input, the registry or the machine (or when no
input image could be read); 2 on a usage error; 70 on a bug in ``bank``
(``--debug`` or ``$BANK_DEBUG`` shows its traceback); 130 when interrupted.
Heavy imports (TensorFlow) happen inside the commands that need them, so
``bank --help`` is instant.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ..version import __version__
from ..errors import BankError
from . import answering, demo, entries, serving, training
from .common import DEBUG_ENV, EXIT_BUG, CommandError, HelpFormatter, emit_json, say

__all__ = ["DEBUG_ENV", "EXIT_BUG", "CommandError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--registry", metavar="PATH", default=argparse.SUPPRESS,
                        help="registry folder (default: $BANK_REGISTRY, else ./registry)")
    common.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help=f"show the traceback of an error (also ${DEBUG_ENV}=1)")

    p = argparse.ArgumentParser(prog="bank", description="Detect features in images with a bank of one-class "
                                "models: one model per class, scored against its own held-out errors.")
    p.add_argument("--version", action="version", version=f"bank {__version__}")
    p.add_argument("--registry", metavar="PATH", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.add_argument("--debug", action="store_true", help=f"show the traceback of an error (also ${DEBUG_ENV}=1)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, parents=[common], help=help, description=help, formatter_class=HelpFormatter)
        sp.set_defaults(func=func)
        return sp

    training.register(add)
    entries.register(add, sub, common)
    answering.register(add)
    serving.register(add, sub)
    demo.register(add)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:  # a bare `bank`: what it can do
        build_parser().print_help()
        return 0
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False) or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    name = f"{args.command} {args.registry_command}" if args.command == "registry" else args.command
    try:
        return args.func(args)
    except BrokenPipeError:  # output piped into head, less...: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        say(f"bank {name}: interrupted")
        return 130
    except (BankError, OSError) as e:  # bank's own errors (input, registry, usage) and the machine's (disk, rights)
        return _failed(args, name, str(e), 1, debug, getattr(e, "extra", None))
    except Exception as e:  # anything else is a bug in bank: say so, and how to see where
        hint = "" if debug else f" (run again with --debug, or {DEBUG_ENV}=1, to see the traceback)"
        return _failed(args, name, f"internal error, a bug in bank: {type(e).__name__}: {e}{hint}", EXIT_BUG, debug)


def _failed(args: argparse.Namespace, name: str, message: str, status: int, debug: bool,
            extra: dict | None = None) -> int:
    """Report the error being handled in one line (with its traceback under ``debug``); return ``status``."""
    if debug:
        import traceback

        traceback.print_exc()
    say(f"bank {name}: error: {message}")
    if getattr(args, "json", False):
        emit_json({"error": message, "internal": status == EXIT_BUG, **(extra or {})})
    return status
