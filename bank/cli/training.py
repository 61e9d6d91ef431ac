"""``bank train`` and ``bank train-all``: one class, or one per sub-folder, trained and registered."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from ..verdict.decision import skipped_json
from ..kinds import AUTO, PHOTO_SIDE, TINY_SIDE, kind_class
from .common import CommandError, LazyHelp, emit_json, pairs, registry_of, report_skipped, say, table


def _training_params(args: argparse.Namespace) -> dict:
    """The training options as the kinds' parameters (and size, color, kind): what :func:`bank.training.runs.make_detector`
    takes."""
    params = {}
    if args.filters:
        try:
            params["filters"] = [int(f) for f in args.filters.split(",")]
        except ValueError:
            raise CommandError(f"--filters: expected whole numbers separated by commas, got {args.filters!r}") from None
        if min(params["filters"]) < 1:
            raise CommandError(f"--filters: expected numbers of filters of at least 1, got {args.filters!r}")
    if args.latent is not None:
        if args.latent < 1:
            raise CommandError(f"--latent: expected a code size of at least 1, got {args.latent}")
        params["latent_dim"] = args.latent
    out = {"size": args.size, "color": args.color, "architecture": args.architecture, "params": params or None,
           "epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed, "patience": args.patience,
           "min_improvement": args.min_improvement, "shift": args.shift, "kind": args.kind, "fresh": args.fresh}
    if args.kind != AUTO:  # auto: said once the images tell the kind
        note_ignored(args.kind, out)
    return {k: v for k, v in out.items() if v is not None}  # an option not given: the kind's own default


def note_ignored(kind: str, params: dict) -> None:
    """Say which of the training options given ``kind`` ignores (rather than drop them silently)."""
    from ..training.runs import ignored_by

    given = ["--" + o.replace("_", "-") for o in TRAINING_FLAGS
             if o in ignored_by(kind, {k: params.get(k) for k in TRAINING_FLAGS})]
    if "params" in ignored_by(kind, {"params": params.get("params")}):
        given += [o for o, k in (("--filters", "filters"), ("--latent", "latent_dim")) if k in params["params"]]
    if given:
        say(f"note: {', '.join(given)}: {kind} does not take {'it' if len(given) == 1 else 'them'}; ignored")


def choose(kind: str, look: tuple[int, bool] | None, params: dict) -> str:
    """The kind to train: ``kind``, or what ``auto`` chooses for images of this ``look`` (largest side, all
    gray), said with why, and with the given options the chosen kind ignores."""
    from ..io.images import parse_size
    from ..kinds import choose_kind, why_kind

    if kind != AUTO:
        return kind
    size = parse_size(params["size"]) if params.get("size") else None
    chosen = choose_kind(*look, size)
    say(f"kind auto: {chosen}, for {why_kind(*look, size)} (--kind names another)")
    note_ignored(chosen, params)
    return chosen


def cmd_train(args: argparse.Namespace) -> int:
    from ..io.data import class_source
    from ..io.pipeline import scan
    from ..registry.store import validate_class_name
    from ..training.runs import check_params, epoch_line, fit_and_register, mixing_note, own_look

    args.class_name = validate_class_name(args.class_name)  # name, registry and options before any image is read
    reg = registry_of(args)
    params = {**_training_params(args), "verbose": 0}
    if not args.json:  # a line per epoch, with the time left, as train-all says it
        params["progress"] = epoch_line(args.class_name, say)
    check_params(params)
    source = class_source(args.data, args.class_name)
    if isinstance(source, list):  # files: checked once now, streamed from disk while training
        data = scan(source)
        skipped = data.skipped
        report_skipped(skipped)
        if not len(data):
            raise CommandError(f"no readable images for class {args.class_name!r} in {', '.join(map(str, args.data))}")
    else:
        data, skipped = source, None
    look = own_look(data)
    params["kind"] = choose(params["kind"], look, params)
    note = mixing_note(reg, [args.class_name], params["kind"], look)
    if note:
        say(f"note: {note}")
    held: list[Path] = []  # the state folder this run took

    def started(work: Path, resuming: bool) -> None:
        held.append(work)
        if resuming:
            say(f"found the state of an interrupted training of class {args.class_name!r} with these images "
                 f"and settings in {work}: it goes on from there (--fresh starts over)")
        say(f"training class {args.class_name!r} on {len(data)} image(s)"
             f"{'' if skipped is None else ' read from files'} (state in {work})")

    resumes = kind_class(params["kind"]).resumes
    if not resumes:  # a kind that resumes says it when it has taken its state folder
        say(f"training class {args.class_name!r} ({params['kind']}) on {len(data)} image(s)"
            f"{'' if skipped is None else ' read from files'}")
    try:
        with contextlib.redirect_stdout(sys.stderr):  # anything a library prints stays off stdout
            det, entry = fit_and_register(reg, args.class_name, data, params, skipped or [], on_start=started)
    except KeyboardInterrupt:
        if held and held[0].is_dir():  # kept: a finished epoch to go on from
            say(f"bank train: interrupted; run the same command again to resume from the last finished epoch "
                 f"(state in {held[0]}; --fresh starts over)")
        elif not resumes:
            say(f"bank train: interrupted; a {params['kind']} training does not resume (the same command starts "
                "over)")
        else:
            say("bank train: interrupted before an epoch finished; nothing to resume (the same command starts over)")
        return 130
    if det.training_.get("resumed_from_epoch"):
        say(f"resumed an interrupted training after epoch {det.training_['resumed_from_epoch']}")
    for w in det.training_.get("warnings", []):
        say(f"warning: {w}")
    skipped = skipped or []
    summary = {
        "class": entry.class_name,
        "version": entry.version,
        "path": str(entry.path),
        "input_spec": det.spec_.to_dict(),
        "kind": det.kind,
        **{k: v for k, v in (entry.card.get("params") or {}).items() if k == "architecture"},
        "training": det.training_,
        "stats": det.stats_.to_dict(),
        "skipped": skipped_json(skipped),
    }
    if args.json:
        emit_json(summary)
    else:
        t, s = det.training_, det.stats_
        print(f"registered class {entry.class_name!r} version {entry.version} (active) at {entry.path}")
        model, shown = kind_class(det.kind).describe(entry.card.get("params") or {})
        print(f"  input {det.spec_}, {model}{f' ({pairs(shown)})' if shown else ''}")
        monitor = f"{t['n_monitor']} early-stopping, " if "n_monitor" in t else ""
        epochs = f"; {t['epochs_run']} epochs, best {t['best_epoch']}" if "epochs_run" in t else ""
        data = f"; {t['data']}" if "data" in t else ""
        print(f"  images: {t['n_train']} train, {monitor}{t['n_calibration']} calibration{epochs}{data}")
        print(f"  held-out error: mean {s.mean:.5g}, std {s.std:.5g}, q0.99 {s.quantiles.get('0.99', float('nan')):.5g}")
        if (entry.path / "loss.png").is_file():
            print(f"  training-loss curves: {entry.path / 'loss.png'}")
    return 0


def cmd_train_all(args: argparse.Namespace) -> int:
    from ..registry.store import validate_class_name
    from ..training.runs import check_params, class_folders, mixing_note, root_look, train_all

    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    reg = registry_of(args)
    params = _training_params(args)
    check_params(params)
    folders = class_folders(args.root)
    todo = classes or list(folders)
    for name in todo:  # refused before any image is read
        validate_class_name(name)
    missing = [c for c in todo if c not in folders]
    if missing:  # said before the kind is chosen from images that are not there
        raise CommandError(f"{args.root}: no sub-folder for class(es) {', '.join(map(repr, missing))} "
                           f"(sub-folders: {', '.join(folders)})")
    look = root_look({c: folders[c] for c in todo})
    params["kind"] = choose(params["kind"], look, params)
    note = mixing_note(reg, todo, params["kind"], look)
    if note:
        say(f"note: {note}")
    say(f"training {len(todo)} class(es), one per sub-folder of {args.root}, into {reg.where} ({args.backend}); "
         f"{'one line per class as each finishes' if args.json else 'a line per epoch of each class that trains by epochs'}")
    finished: list = []

    def progress(r, done: int, total: int) -> None:
        finished.append(r)
        if args.json:  # otherwise each training named its skipped files before it began
            for name, reason in r.skipped:
                say(f"class {r.class_name!r}: skipped {name}: {reason}")

        if r.error:
            what = f"FAILED: {r.error}"
        else:
            resumed = f", went on from epoch {r.resumed_from_epoch} of an interrupted run" if r.resumed_from_epoch else ""
            what = (f"version {r.version}, {r.n_images} images"
                    f"{f' ({len(r.skipped)} unreadable skipped)' if r.skipped else ''}, {r.seconds:.0f} s{resumed}")
        left = f"; {total - done} class(es) still training or waiting" if done < total else ""
        say(f"[{done}/{total}] class {r.class_name!r}: {what}{left}")
        for w in r.warnings:
            say(f"  warning: class {r.class_name!r}: {w}")

    try:
        runs = train_all(args.root, reg.root, params, n_jobs=args.jobs, backend=args.backend,
                         scheduler=args.scheduler, classes=classes, progress=not args.json, on_done=progress)
    except KeyboardInterrupt:
        landed = [f"{r.class_name} (version {r.version})" for r in finished if not r.error]
        rest = [c for c in todo if c not in {r.class_name for r in finished if not r.error}]
        resumes = kind_class(params["kind"]).resumes
        each = "each from its last finished epoch" if resumes else f"each anew ({params['kind']} does not resume)"
        if not landed:
            say(f"bank train-all: interrupted before any class was registered; run the same command again: "
                f"{each}")
        else:
            say(f"bank train-all: interrupted. Registered before that: {', '.join(landed)}. "
                + (f"To go on with the others, {each}, run the same command with "
                   f"--classes {','.join(rest)}" if rest else ""))
        return 130
    failed = [r for r in runs if r.error]
    if args.json:
        emit_json({"registry": str(reg.root), "classes": [r.to_dict() for r in runs],
                    "failed": [r.class_name for r in failed]})
    else:
        rows = [[r.class_name, r.version if r.version else "-", r.n_images, len(r.skipped), f"{r.seconds:.1f}",
                 "ok" if not r.error else "FAILED: " + r.error] for r in runs]
        print(table(rows, ["class", "version", "images", "skipped", "seconds", "status"]))
        print(f"{len(runs) - len(failed)} of {len(runs)} classes registered in {reg.root}")
    return 1 if failed else 0


def _share_or_auto(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number such as 0.1, got {text!r}") from None


#: The training flags beyond --size, --color and --seed, by the option each sets ("filters" and "latent" reach
#: the architecture inside "params"); each kind takes those it declares (its ``training_options``).
TRAINING_FLAGS = ("epochs", "architecture", "filters", "latent", "batch_size", "patience", "min_improvement",
                  "shift")


def _defaults(option: str) -> str:
    """The defaults of ``option`` for the kinds that take it, as ``--help`` says them (read from the kinds)."""
    from ..kinds import option_defaults

    by_value: dict[str, list[str]] = {}
    for kind, default in option_defaults(option).items():
        by_value.setdefault(str(default), []).append(kind)
    return "; ".join(f"{v} for {', '.join(kinds)}" for v, kinds in by_value.items()) or "none take it"


def add_training(sp: argparse.ArgumentParser) -> None:
    from ..kinds import KINDS

    def kinds() -> str:
        from ..kinds import kind_class

        summaries = "; ".join(f"{k}: {kind_class(k).summary}" for k in KINDS)
        return (f"the kind of class model. auto (default): pretrained for photos, in colour (at least 16 px) or "
                f"larger than {PHOTO_SIDE} px on a side; ae-hog for small gray images such as MNIST's digits; "
                f"autoencoder for tiny ones (at most {TINY_SIDE} px a side, such as 8x8 digits). "
                f"{summaries}. --size, --color and --seed apply to every kind, the other training options to the "
                "kinds that take them (each option's help names them; a kind says which it ignores)")

    def defaults(text: str, option: str) -> LazyHelp:  # read from the kinds when --help shows it
        return LazyHelp(lambda: f"{text} (default: {_defaults(option)})")

    sp.add_argument("--kind", choices=[AUTO, *KINDS], default=AUTO, help=LazyHelp(kinds))
    sp.add_argument("--epochs", type=int, help=defaults("most epochs; early stopping may end sooner", "epochs"))
    sp.add_argument("--size", metavar="HxW", help="input size (default: the images' own size if they share one, "
                    "at most 128, else 64x64; pretrained sees its network's 224x224 colour and refuses another)")
    sp.add_argument("--color", choices=["gray", "rgb"], help="default: gray unless the images have colour")
    sp.add_argument("--seed", type=int, default=0, help="seeds the split, the weights and shuffling (default 0)")
    sp.add_argument("--architecture", choices=["auto", "conv", "dense"],
                    help=defaults("auto: dense up to 16x16, conv above", "architecture"))
    sp.add_argument("--filters", metavar="F1,F2,...", help=LazyHelp(
        lambda: f"conv filters per block, such as 32,64 (taken by: {', '.join(_takers('params'))})"))
    sp.add_argument("--latent", type=int, metavar="N",
                    help=LazyHelp(lambda: f"latent code size (taken by: {', '.join(_takers('params'))})"))
    sp.add_argument("--batch-size", type=int, help=defaults("images per training step", "batch_size"))
    sp.add_argument("--patience", type=int,
                    help=defaults("stop after this many epochs in a row without progress", "patience"))
    sp.add_argument("--min-improvement", type=float, metavar="SHARE",
                    help=defaults("progress: an epoch lowers the best early-stopping loss by at least this share "
                                  "of it", "min_improvement"))
    sp.add_argument("--shift", type=_share_or_auto, metavar="SHARE",
                    help=defaults("move each training image by a random shift of up to this share of its sides, "
                                  "anew each epoch; 0 turns it off; auto: each kind's own choice by the size of the "
                                  "class (docs/kinds.md)", "shift"))
    sp.add_argument("--fresh", action="store_true", help="start over: discard the state an interrupted "
                    "training of the class left (by default the same command resumes from it)")


def _takers(option: str) -> list[str]:
    from ..kinds import option_defaults

    return list(option_defaults(option))


def register(add) -> None:
    """Add the training commands (``add(name, func, help)`` makes a sub-parser with the common options)."""
    sp = add("train", cmd_train, "train one class model and register it as the active version")
    sp.add_argument("class_name", metavar="CLASS", help="class name (a folder-safe name)")
    sp.add_argument("data", metavar="DATA", nargs="+", help="images or folders of the class; a folder with a "
                    "sub-folder named CLASS; or a folder of MNIST IDX files (images labelled CLASS)")
    add_training(sp)

    sp = add("train-all", cmd_train_all, "train one class per sub-folder of ROOT, in parallel processes")
    sp.add_argument("root", metavar="ROOT", help="a folder with one sub-folder of images per class")
    sp.add_argument("--jobs", type=int, metavar="N", help="parallel trainings (default: one per core; with dask, "
                    "as many as the cluster runs)")
    sp.add_argument("--backend", choices=["loky", "dask"], default="loky",
                    help="loky: local processes (default); dask: a Dask cluster, through joblib's dask backend")
    sp.add_argument("--scheduler", metavar="ADDRESS", help="the Dask scheduler, such as tcp://10.0.0.1:8786 "
                    "(--backend dask); the registry must be a path every worker can write")
    sp.add_argument("--classes", metavar="A,B,...", help="train these sub-folders only")
    add_training(sp)
