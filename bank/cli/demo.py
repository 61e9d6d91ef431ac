"""``bank demo``: the digit bank on scikit-learn's bundled 8x8 digits, trained and tested in one command."""

from __future__ import annotations

import argparse

from ..verdict import stats as st
from .common import emit_json, registry_of, say, table


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    reg = registry_of(args)
    say(f"demo: one autoencoder per digit of scikit-learn's 8x8 digits, registered into {reg.root}")
    out = run_demo(reg, epochs=args.epochs, seed=args.seed, progress=say)
    if args.json:
        emit_json(out)
        return 0
    print(f"argmin accuracy on {out['n_test']} held-out digits: {out['accuracy']:.3f}")
    print(f"called unknown (every class flags): {out['unknown_rate']:.1%}")
    print(f"trained {len(out['classes'])} classes in {out['train_seconds']} s into {out['registry']}")
    print("no digits at all: " + ", ".join(f"{k} -> {v}" for k, v in out["foreign"].items()))
    from ..demo import EXAMPLE_COLUMNS, example_rows

    print("\nscores of a few held-out digits:")
    print(table(example_rows(out["examples"]), EXAMPLE_COLUMNS))
    print(f"z, score: the seeds' Gaussian on the raw error; test z: the {st.METHOD_LABELS['complexity']} of the "
          f"error; margin: log error minus the best other class's; input cx z: the {st.INPUT_COMPLEXITY_LABEL} "
          "(of the input's zlib bits per value); FLAG (...): the tests that flag the class")
    print("\nnext: 'bank list', 'bank classify IMAGE...', 'bank score IMAGE...'")
    return 0


def register(add) -> None:
    """Add ``demo``."""
    sp = add("demo", cmd_demo, "train and test a digit bank on scikit-learn's bundled 8x8 digits (no data needed)")
    sp.add_argument("--epochs", type=int, default=60, help="most epochs per digit (default 60)")
    sp.add_argument("--seed", type=int, default=0, help="seeds the split and the training (default 0)")
