"""The ``bank`` command: a thin layer over the Python API.

Results go to stdout (a table, or one JSON document with ``--json``);
progress, warnings and skipped inputs go to stderr. Exit status: 0 on
success, 1 on an error (or when no input image could be read), 2 on a usage
error. Heavy imports (TensorFlow) happen inside the commands that need them,
so ``bank --help`` is instant.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from . import stats as st
from .decoding import MAX_PIXELS, MAX_PIXELS_ENV
from .errors import BankError
from .registry import RUNTIMES, Registry, RegistryError
from .decision import skipped_json
from .stats import DEFAULT_COMPLEXITY, DEFAULT_MARGIN, DEFAULT_THRESHOLD, STATS_METHODS, error_cut


#: Where ``bank serve`` finds its token when --token is not given.
TOKEN_ENV = "BANK_TOKEN"


#: Set to 1 to see the traceback of every error (as --debug does).
DEBUG_ENV = "BANK_DEBUG"
#: The exit status of a bug in bank (sysexits' EX_SOFTWARE), apart from 1 (an error of the input or the machine).
EXIT_BUG = 70


class CommandError(BankError):
    """A failure to report as one line on stderr, exit status 1."""


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _emit_json(obj: object) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _table(rows: list[list[object]], header: list[str]) -> str:
    cells = [[str(c) for c in header]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"
    return "" if v is None else str(v)


def _positive(text: str) -> float:
    """An argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _optional(text: str) -> float | None:
    """An argparse type: a positive number, or 'none' to turn a test off."""
    if text.lower() == "none":
        return None
    try:
        return _positive(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'none', got {text!r}") from None


def _pixels(text: str) -> int:
    """An argparse type: a whole number of pixels, such as 64000000 or 6.4e7."""
    from .decoding import check_max_pixels

    try:
        return check_max_pixels(text, "--max-pixels")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _registry(args: argparse.Namespace) -> Registry:
    return Registry(getattr(args, "registry", None))


def _report_skipped(skipped: list[tuple[str, str]]) -> None:
    if skipped:
        _say(f"skipped {len(skipped)} input(s) that could not be read:")
        for name, reason in skipped:
            _say(f"  {name}: {reason}")


# ---------------------------------------------------------------- commands

def _class_data(args: argparse.Namespace, **decoding) -> tuple:
    """The images of one class that DATA points at: (images, names, skipped), skipped reported
    (``decoding``: see :func:`bank.data.load_images`)."""
    from .data import Loaded, class_images

    data = class_images(args.data, args.class_name, **decoding)
    if not isinstance(data, Loaded):  # an IDX array
        return data, [f"{args.class_name} #{i}" for i in range(len(data))], []
    _report_skipped(data.skipped)
    if not data.images:
        raise CommandError(f"no readable images for class {args.class_name!r} in {', '.join(map(str, args.data))}")
    return data.images, data.names, data.skipped


def _training_params(args: argparse.Namespace) -> dict:
    """AutoencoderDetector parameters (and size, color) from the training options."""
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
    return {"size": args.size, "color": args.color, "architecture": args.architecture, "params": params or None,
            "epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed, "patience": args.patience,
            "fresh": args.fresh}


def cmd_train(args: argparse.Namespace) -> int:
    from .data import class_source
    from .pipeline import scan
    from .registry import validate_class_name
    from .training import check_params, fit_and_register

    args.class_name = validate_class_name(args.class_name)  # name, registry and options before any image is read
    reg = _registry(args)
    params = {**_training_params(args), "verbose": 0 if args.json else "auto"}
    check_params(params)
    source = class_source(args.data, args.class_name)
    if isinstance(source, list):  # files: checked once now, streamed from disk while training
        data = scan(source)
        skipped = data.skipped
        _report_skipped(skipped)
        if not len(data):
            raise CommandError(f"no readable images for class {args.class_name!r} in {', '.join(map(str, args.data))}")
    else:
        data, skipped = source, None
    held: list[Path] = []  # the state folder this run took

    def started(work: Path, resuming: bool) -> None:
        held.append(work)
        if resuming:
            _say(f"found the state of an interrupted training of class {args.class_name!r} with these images "
                 f"and settings in {work}: it goes on from there (--fresh starts over)")
        _say(f"training class {args.class_name!r} on {len(data)} image(s)"
             f"{'' if skipped is None else ' read from files'} (state in {work})")

    try:
        with contextlib.redirect_stdout(sys.stderr):  # Keras progress stays off stdout
            det, entry = fit_and_register(reg, args.class_name, data, params, skipped or [], on_start=started)
    except KeyboardInterrupt:
        if held and held[0].is_dir():  # kept: a finished epoch to go on from
            _say(f"bank train: interrupted; run the same command again to resume from the last finished epoch "
                 f"(state in {held[0]}; --fresh starts over)")
        else:
            _say("bank train: interrupted before an epoch finished; nothing to resume (the same command starts over)")
        return 130
    if det.resumed_from_:
        _say(f"resumed an interrupted training after epoch {det.resumed_from_}")
    for w in det.training_.get("warnings", []):
        _say(f"warning: {w}")
    skipped = skipped or []
    summary = {
        "class": entry.class_name,
        "version": entry.version,
        "path": str(entry.path),
        "input_spec": det.spec_.to_dict(),
        "architecture": {"name": det.architecture_, "params": det.params_},
        "training": det.training_,
        "stats": det.stats_.to_dict(),
        "skipped": skipped_json(skipped),
    }
    if args.json:
        _emit_json(summary)
    else:
        t, s = det.training_, det.stats_
        print(f"registered class {entry.class_name!r} version {entry.version} (active) at {entry.path}")
        print(f"  input {det.spec_}, {det.architecture_} autoencoder {det.params_}")
        print(f"  images: {t['n_train']} train, {t['n_monitor']} early-stopping, {t['n_calibration']} calibration;"
              f" {t['epochs_run']} epochs, best {t['best_epoch']}; {t['data']}")
        print(f"  held-out error: mean {s.mean:.5g}, std {s.std:.5g}, q0.99 {s.quantiles.get('0.99', float('nan')):.5g}")
        print(f"  training-loss curves: {entry.path / 'loss.png'}")
    return 0


def cmd_train_all(args: argparse.Namespace) -> int:
    from .training import class_folders, train_all

    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    reg = _registry(args)
    params = _training_params(args)
    todo = classes or list(class_folders(args.root))
    _say(f"training {len(todo)} class(es), one per sub-folder of {args.root}, into {reg.where} ({args.backend}); "
         f"{'one line per class as each finishes' if args.json else 'a line per epoch of each class'}")
    finished: list = []

    def progress(r, done: int, total: int) -> None:
        finished.append(r)
        for name, reason in r.skipped:
            _say(f"class {r.class_name!r}: skipped {name}: {reason}")
        if r.error:
            what = f"FAILED: {r.error}"
        else:
            resumed = f", went on from epoch {r.resumed_from_epoch} of an interrupted run" if r.resumed_from_epoch else ""
            what = f"version {r.version}, {r.n_images} images, {r.seconds:.0f} s{resumed}"
        left = f"; {total - done} class(es) still training or waiting" if done < total else ""
        _say(f"[{done}/{total}] class {r.class_name!r}: {what}{left}")
        for w in r.warnings:
            _say(f"  warning: class {r.class_name!r}: {w}")

    try:
        runs = train_all(args.root, reg.root, params, n_jobs=args.jobs, backend=args.backend,
                         scheduler=args.scheduler, classes=classes, progress=not args.json, on_done=progress)
    except KeyboardInterrupt:
        landed = [f"{r.class_name} (version {r.version})" for r in finished if not r.error]
        rest = [c for c in todo if c not in {r.class_name for r in finished if not r.error}]
        _say("bank train-all: interrupted. " + (f"Registered before that: {', '.join(landed)}. " if landed else "")
             + ("To go on with the others, each from its last finished epoch, run the same command with --classes "
                f"{','.join(rest)}" if rest else ""))
        return 130
    failed = [r for r in runs if r.error]
    if args.json:
        _emit_json({"registry": str(reg.root), "classes": [r.to_dict() for r in runs],
                    "failed": [r.class_name for r in failed]})
    else:
        rows = [[r.class_name, r.version if r.version else "-", r.n_images, len(r.skipped), f"{r.seconds:.1f}",
                 "ok" if not r.error else "FAILED: " + r.error] for r in runs]
        print(_table(rows, ["class", "version", "images", "skipped", "seconds", "status"]))
        print(f"{len(runs) - len(failed)} of {len(runs)} classes registered in {reg.root}")
    return 1 if failed else 0


def cmd_list(args: argparse.Namespace) -> int:
    reg = _registry(args)
    if not reg.root.is_dir():
        raise reg.missing()
    rows, out = [], []
    for name in reg.classes():
        try:
            active = reg.active_version(name)
            e = reg.entry(name, active)
            reg.check_model(e)
            s = e.stats
            item = {"class": name, "active": active, "versions": reg.versions(name), "input_spec": e.spec.to_dict(),
                    "architecture": e.card["architecture"]["name"], "stats": s.to_dict(),
                    "created": e.card.get("created"), "broken": None}
            rows.append([name, active, ",".join(map(str, item["versions"])), str(e.spec), item["architecture"],
                         s.n, s.mean, s.std, item["created"]])
        except RegistryError as err:
            item = {"class": name, "versions": reg.versions(name), "broken": str(err)}
            rows.append([name, "BROKEN", ",".join(map(str, item["versions"])), str(err), "", "", "", "", ""])
        out.append(item)
    if args.json:
        _emit_json({"registry": str(reg.root), "classes": out})
    elif not rows:
        print(f"no classes in {reg.root} (train one with 'bank train CLASS DATA', or run 'bank demo')")
    else:
        print(_table(rows, ["class", "active", "versions", "input", "model", "n", "mean err", "std err", "created"]))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    reg = _registry(args)
    e = reg.entry(args.class_name, args.version)
    try:
        reg.check_model(e)
        broken = None
    except RegistryError as err:
        broken = str(err)
        _say(f"warning: {broken}")
    if args.json:
        _emit_json({**e.card, "broken": broken})
        return 0
    c, s = e.card, e.stats
    print(f"class {e.class_name!r} version {e.version} ({e.path})")
    print(f"  created      {c.get('created')}")
    print(f"  input        {e.spec}")
    print(f"  model        {c['architecture']['name']} {c['architecture']['params']}")
    t = c.get("training", {})
    print(f"  training     {t.get('n_train')} train / {t.get('n_monitor')} early-stopping / "
          f"{t.get('n_calibration')} calibration images; {t.get('epochs_run')} epochs (best {t.get('best_epoch')}), "
          f"seed {t.get('seed')}")
    print(f"  error stats  mean {s.mean:.6g}, std {s.std:.6g}, n {s.n} (per-pixel MSE on held-out images)")
    print("  quantiles    " + ", ".join(f"q{k} {v:.6g}" for k, v in s.quantiles.items()))
    print(f"  log error    mean {s.log_mean:.6g}, std {s.log_std:.6g}")
    t = DEFAULT_THRESHOLD
    if s.has_complexity:
        lo, hi = (math.exp(s.complexity_mean + sign * DEFAULT_COMPLEXITY * s.complexity_std) for sign in (-1, 1))
        if s.n >= st.MIN_COMPLEXITY_SAMPLES:
            line = f"log error changes by {s.complexity_slope:.3g} per log bit; residual std {s.residual_std:.6g}"
        else:
            line = (f"no line fitted (fewer than {st.MIN_COMPLEXITY_SAMPLES} held-out images): the complexity-"
                    "corrected z is the lognormal z")
        print(f"  complexity   {math.exp(s.complexity_mean):.4g} bits/value typical; {line}")
        print(f"  flags        complexity-corrected z of the error > {t:g}: error > "
              f"{error_cut(s, t, 'complexity'):.6g} at typical complexity (default); "
              f"|{st.INPUT_COMPLEXITY_LABEL}| > {DEFAULT_COMPLEXITY:g}: input outside {lo:.3g}..{hi:.3g} bits/value")
    else:
        print("  complexity   not fitted (registered before complexity statistics): lognormal is used")
    print(f"  {'other rules' if s.has_complexity else 'flags':<12} lognormal z > {t:g}: error > "
          f"{error_cut(s, t, 'lognormal'):.6g}; "
          f"gaussian z > {t:g}: error > {error_cut(s, t, 'gaussian'):.6g};"
          f" and, in a bank, margin > {DEFAULT_MARGIN:g} (another class's error lower by more than "
          f"{1 - math.exp(-DEFAULT_MARGIN):.0%})"
          " (change with --method, --threshold, --margin, --complexity)")
    for w in c.get("training", {}).get("warnings") or []:
        print(f"  warning      {w}")
    print(f"  versions     {c.get('versions')}")
    print(f"  sha256       {c['model_sha256']}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    reg = _registry(args)
    removed = reg.remove(args.class_name, args.version)
    active = reg.active_version(args.class_name) if reg.versions(args.class_name) else None
    if args.json:
        _emit_json({"class": args.class_name, "removed": removed, "active": active})
    elif active is None:
        print(f"removed class {args.class_name!r} (version(s) {', '.join(map(str, removed))}); "
              "it has no versions left")
    else:
        print(f"removed class {args.class_name!r} version {removed[0]}; active version: {active}")
    return 0


def cmd_activate(args: argparse.Namespace) -> int:
    _registry(args).activate(args.class_name, args.version)
    if args.json:
        _emit_json({"class": args.class_name, "active": args.version})
    else:
        print(f"class {args.class_name!r}: version {args.version} is active")
    return 0


def _classes_option(args: argparse.Namespace) -> list[str] | None:
    """The class names of --classes, or None for every class."""
    if args.classes is None:
        return None
    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    if not classes:
        raise CommandError("--classes: expected class names separated by commas, got none")
    return classes


def _router(args: argparse.Namespace):
    from .router import Router

    classes = _classes_option(args)
    router = Router.from_registry(_registry(args), classes, threshold=args.threshold, method=args.method,
                                  margin=args.margin, complexity_threshold=args.complexity,
                                  skip_broken=args.skip_broken, runtime=args.runtime)
    for name, reason in router.skipped:
        _say(f"skipped a broken class: {reason}")
    for c, s in zip(router.classes, router.stats):
        if st.effective_method(s, router.method) != router.method:
            _say(f"class {c!r} has no complexity statistics (registered before them): it uses the lognormal z and "
                 "no complexity test; retrain it to get them")
    return router


def _route(args: argparse.Namespace):
    router = _router(args)
    result, skipped = router.score_files(args.paths, max_pixels=args.max_pixels)
    _report_skipped(skipped)
    if result is None:
        raise CommandError(f"no readable images in {', '.join(args.paths)}")
    return result, skipped, router.skipped


def cmd_classify(args: argparse.Namespace) -> int:
    result, *skipped = _route(args)
    if args.json:
        _emit_json(result.to_json(*skipped))
        return 0
    rows = []
    for i, rec in enumerate(result.records()):
        k = result.classes.index(rec["nearest"])
        why = "; ".join(result.reasons(i, k)) if rec["unknown"] else ""
        rows.append([rec["image"], rec["label"] or "unknown", rec["nearest"], result.errors[i, k],
                     result.test_z[i, k], why])
    print(_table(rows, ["image", "label", "nearest", "its error", "its test z", "why unknown"]))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    result, *skipped = _route(args)
    if args.json:
        _emit_json(result.to_json(*skipped))
        return 0
    from .evaluate import flag_cell, flag_tags

    rows = []
    for i, name in enumerate(result.names):
        for k, c in enumerate(result.classes):
            cz = result.complexity_z[i, k] if result.complexity_z is not None else float("nan")
            rows.append([name, c, result.errors[i, k], result.z[i, k], result.score[i, k], result.test_z[i, k],
                         result.p_value[i, k], result.margin[i, k], cz, flag_cell(flag_tags(result, i, k))])
    print(_table(rows, ["image", "class", "error", "z", "score", "test z", "p", "margin", "input cx z", "flag"]))
    print(f"z, score: the seeds' Gaussian on the raw error; test z: the {st.METHOD_LABELS[result.method]} of the "
          "error, the flag's first test (p its upper tail); margin: log error minus the best other class's; input cx "
          f"z: the {st.INPUT_COMPLEXITY_LABEL}, the input's zlib bits per value against the class's images (a "
          "different quantity); flag: the tests that fired")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .data import load_labelled_images
    from .evaluate import describe_rule
    from .images import to_spec
    from .report import write_report

    router = _router(args)
    keep = router.common_spec  # the images are kept for the report: at the bank's size, not the files'
    data = load_labelled_images(args.data, args.split, args.limit, fit=router.fit, max_pixels=args.max_pixels,
                                transform=lambda img: to_spec([img], keep)[0])
    _report_skipped(data.skipped)
    if not data.truth:
        raise CommandError(f"no readable images in {args.data}")
    _say(f"evaluating {len(router.classes)} class(es) on {len(data.truth)} image(s) of {args.data}")
    f = write_report(args.out, router, data.images, data.truth, data.names)
    f["skipped"], f["skipped_classes"] = skipped_json(data.skipped), skipped_json(router.skipped, "class")
    if args.json:
        _emit_json(f)
        return 0
    foreign = f["n_foreign"]
    print(f"{f['n_images']} images: {f['n_known']} of the bank's {len(f['classes'])} classes, {foreign} foreign"
          + (f" (of classes outside the bank: {', '.join(f['foreign_classes'])})" if foreign else ""))
    print("flags: a class says \"not this class\" when "
          f"{describe_rule(f['method'], f['threshold'], f['margin'], f['complexity_threshold'])}")
    print(f"argmin accuracy {f['accuracy']:.4f} (on the images of the bank's classes); mean AUROC "
          f"{_fmt(f['auroc_mean'])}; false reject {_fmt(f['false_reject'])}; false accept {_fmt(f['false_accept'])}")
    print(f"called unknown: {f['unknown_rate']:.2%} of the images of the bank's classes ({f['n_unknown']} of "
          f"{f['n_known']}; should be low)")
    if foreign:
        print(f"called unknown: {f['foreign_unknown_rate']:.2%} of the foreign images ({f['n_foreign_unknown']} of "
              f"{foreign}; should be high)")
    else:
        print("called unknown, foreign images: none given (a sub-folder of DATA named after no class of the bank "
              "measures it: images the bank should call unknown)")
    keys = ["n_own", "auroc", "false_reject", "false_accept", "welch_t", "error_mean_own", "error_mean_other"]
    print(_table([[c] + [v[k] for k in keys] for c, v in f["per_class"].items()], ["class"] + keys))
    if f["training_warnings"]:
        print("training warnings (from the classes' cards; 'bank show CLASS' shows the card):")
        for c, warnings in f["training_warnings"].items():
            for w in warnings:
                print(f"  class {c!r}: {w}")
    print(f"report: {f['report']}/report.html")
    return 0


def cmd_outliers(args: argparse.Namespace) -> int:
    from .evaluate import describe_outliers, outlier_cut, past_each_quantile, rank_outliers
    from .images import to_spec
    from .stats import effective_method, zscore

    det = _registry(args).load_detector(args.class_name, runtime=args.runtime)
    spec = det.spec_
    images, names, skipped = _class_data(args, fit=(spec.height, spec.width), max_pixels=args.max_pixels,
                                         transform=lambda img: to_spec([img], spec)[0])
    cut, warning = outlier_cut(det.stats_, args.quantile)
    if warning:
        _say(f"warning: {warning}")
    errors, cx = det.measure(images)
    order = rank_outliers(errors, cut)
    z = zscore(errors, det.stats_)
    method = effective_method(det.stats_, "complexity")
    test_z = zscore(errors, det.stats_, method, cx)
    label = st.METHOD_LABELS[method]
    rows = [{"rank": r + 1, "image": names[i], "error": float(errors[i]), "times_cut": float(errors[i] / cut),
             "z": float(z[i]), "test_z": float(test_z[i]), "method": method} for r, i in enumerate(order)]
    montage = None
    if len(order) and args.montage != "none":
        from .images import take
        from .report import plot_montage

        top = order[: args.top]
        x, rec = det.reconstruct(take(images, top))
        montage = str(plot_montage(
            Path(args.montage or f"outliers-{args.class_name}.png"), x, rec,
            [f"#{r + 1} {Path(names[i]).name}: error {errors[i] / cut:.2f}x the cut, {label} {test_z[i]:.1f}"
             for r, i in enumerate(top)]))
    past = past_each_quantile(errors, det.stats_)
    out = {"class": args.class_name, "quantile": args.quantile, "cut": cut, "n_images": len(errors),
           "n_outliers": len(rows), "outliers": rows, "montage": montage, "past_each_quantile": past,
           "skipped": skipped_json(skipped), "warning": warning}
    if args.json:
        _emit_json(out)
        return 0
    before, after = describe_outliers(args.class_name, len(errors), len(rows), args.quantile, cut, args.top, past,
                                      montage is not None, label)
    print("\n".join(before))
    if rows:
        print(_table([[r["rank"], r["image"], r["error"], f"{r['times_cut']:.2f}x", r["test_z"]] for r in rows],
                     ["rank", "image", "error", "times the cut", label]))
    if after:
        print("\n".join(after))
    if montage:
        print(f"montage: {montage}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    reg = _registry(args)
    problems = reg.verify(load=not args.quick)
    entries = sum(len(reg.versions(c)) for c in reg.classes())
    leftovers = reg.leftovers()
    if args.json:
        _emit_json({"registry": str(reg.root), "ok": not problems, "entries": entries,
                    "problems": [{"class": p.class_name, "version": p.version, "error": str(p)} for p in problems],
                    "leftovers": [str(p) for p in leftovers]})
    else:
        for p in problems:
            print(f"BROKEN  {p}")
        if leftovers:
            print(f"{len(leftovers)} leftover(s) of interrupted writes (readers ignore them; 'bank registry gc' "
                  "removes them)")
        how = "cards and checksums" if args.quick else "cards, checksums, and models loaded in safe mode"
        print(f"{reg.root}: {entries} entries checked ({how}): " + (f"{len(problems)} broken" if problems else "all sound"))
    return 1 if problems else 0


def cmd_gc(args: argparse.Namespace) -> int:
    reg = _registry(args)
    gone = reg.gc()
    if args.json:
        _emit_json({"registry": str(reg.root), "removed": [str(p) for p in gone]})
    else:
        for p in gone:
            print(f"removed {p}")
        print(f"{reg.root}: removed {len(gone)} leftover(s) of interrupted writes")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    reg = _registry(args)
    _say(f"demo: one autoencoder per digit of scikit-learn's 8x8 digits, registered into {reg.root}")
    out = run_demo(reg, epochs=args.epochs, seed=args.seed, progress=_say)
    if args.json:
        _emit_json(out)
        return 0
    print(f"argmin accuracy on {out['n_test']} held-out digits: {out['accuracy']:.3f}")
    print(f"called unknown (every class flags): {out['unknown_rate']:.1%}")
    print(f"trained {len(out['classes'])} classes in {out['train_seconds']} s into {out['registry']}")
    print("no digits at all: " + ", ".join(f"{k} -> {v}" for k, v in out["foreign"].items()))
    from .demo import EXAMPLE_COLUMNS, example_rows

    print("\nscores of a few held-out digits:")
    print(_table(example_rows(out["examples"]), EXAMPLE_COLUMNS))
    print(f"z, score: the seeds' Gaussian on the raw error; test z: the {st.METHOD_LABELS['complexity']} of the "
          f"error; margin: log error minus the best other class's; input cx z: the {st.INPUT_COMPLEXITY_LABEL} "
          "(of the input's zlib bits per value); FLAG (...): the tests that flag the class")
    print("\nnext: 'bank list', 'bank classify IMAGE...', 'bank score IMAGE...'")
    return 0


def _loopback(host: str) -> bool:
    """True for an address only this machine can reach (serving anywhere else needs a token)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_bank

    _say("exporting (loads TensorFlow) ...")
    path = export_bank(_registry(args), args.out, name=args.name, version=args.version,
                       classes=_classes_option(args), threshold=args.threshold, method=args.method,
                       margin=args.margin, complexity_threshold=args.complexity)
    meta = json.loads((path / "assets.extra" / "bank.json").read_text())
    if args.json:
        _emit_json({"path": str(path), **meta})
        return 0
    spec = meta["input"]
    print(f"wrote {path}: {len(meta['classes'])} classes ({', '.join(meta['classes'])}), input "
          f"{spec['height']}x{spec['width']}x{spec['channels']} float32 in [0, 1]")
    print(f"serve it: docker run -p 8501:8501 -v {path.parent.resolve()}:/models/{args.name} "
          f"-e MODEL_NAME={args.name} tensorflow/serving")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get(TOKEN_ENV) or None
    if token is None and not _loopback(args.host):
        _say(f"bank serve: error: --host {args.host} can be reached from other machines: set a token with --token T "
             f"or ${TOKEN_ENV} (or bind 127.0.0.1)")
        return 2
    try:
        import uvicorn

        from .server import create_app
    except ImportError as e:
        raise CommandError(f"serving needs FastAPI and uvicorn: pip install -e '.[serve]' ({e})") from None
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    app = create_app(_registry(args).root, token=token, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                     max_upload_bytes=int(args.max_upload_mb * 2**20), max_images=args.max_images,
                     max_pixels=args.max_pixels, decode_pixels=args.decode_pixels,
                     max_inflight_bytes=int(args.max_inflight_mb * 2**20) if args.max_inflight_mb else None,
                     queue_seconds=args.queue_seconds, runtime=args.runtime,
                     classes=_classes_option(args), threshold=args.threshold, method=args.method, margin=args.margin,
                     complexity_threshold=args.complexity)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


# ---------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--registry", metavar="PATH", default=argparse.SUPPRESS,
                        help="registry folder (default: $BANK_REGISTRY, else ./registry)")
    common.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help=f"show the traceback of an error (also ${DEBUG_ENV}=1)")

    p = argparse.ArgumentParser(prog="bank", description="Detect features in images with a bank of one-class "
                                "autoencoders: one model per class, scored against its own held-out errors.")
    p.add_argument("--version", action="version", version=f"bank {__version__}")
    p.add_argument("--registry", metavar="PATH", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.add_argument("--debug", action="store_true", help=f"show the traceback of an error (also ${DEBUG_ENV}=1)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, parents=[common], help=help, description=help)
        sp.set_defaults(func=func)
        return sp

    def add_training(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--epochs", type=int, default=30, help="most epochs; early stopping may end sooner (default 30)")
        sp.add_argument("--size", metavar="HxW", help="input size (default: the images' own size if they share one, "
                        "at most 128, else 64x64)")
        sp.add_argument("--color", choices=["gray", "rgb"], help="default: gray unless the images have colour")
        sp.add_argument("--seed", type=int, default=0, help="seeds the split, the weights and shuffling (default 0)")
        sp.add_argument("--architecture", choices=["auto", "conv", "dense"], default="auto",
                        help="auto: dense up to 16x16, conv above (default)")
        sp.add_argument("--filters", metavar="F1,F2,...", help="conv filters per block, such as 32,64")
        sp.add_argument("--latent", type=int, metavar="N", help="latent code size")
        sp.add_argument("--batch-size", type=int, default=64, help="default 64")
        sp.add_argument("--patience", type=int, default=5, help="early-stopping patience in epochs (default 5)")
        sp.add_argument("--fresh", action="store_true", help="start over: discard the state an interrupted "
                        "training of the class left (by default the same command resumes from it)")

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

    add("list", cmd_list, "list the classes, their versions and which is active")

    sp = add("show", cmd_show, "show a class model's card: input, training, error statistics")
    sp.add_argument("class_name", metavar="CLASS")
    sp.add_argument("--version", type=int, help="a version (default: the active one)")

    sp = add("remove", cmd_remove, "remove a class, or one version of it")
    sp.add_argument("class_name", metavar="CLASS")
    sp.add_argument("--version", type=int, help="remove only this version")

    sp = add("activate", cmd_activate, "make a version of a class the active one (roll back or forward)")
    sp.add_argument("class_name", metavar="CLASS")
    sp.add_argument("version", metavar="VERSION", type=int)

    def add_runtime(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--runtime", choices=RUNTIMES, default="auto",
                        help="run the models with LiteRT (no TensorFlow import; written at registration), with Keras "
                             "(TensorFlow, the reference), or auto: LiteRT where the class has it (default)")

    def add_max_pixels(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--max-pixels", type=_pixels, metavar="N", help=f"refuse (and name) an image that would "
                        f"decode to more than N pixels; images are decoded no larger than the bank needs, a JPEG "
                        f"at the scale it needs (default ${MAX_PIXELS_ENV}, else {MAX_PIXELS})")

    def add_tests(sp: argparse.ArgumentParser, skip_broken: bool = True, runtime: bool = True) -> None:
        if runtime:
            add_runtime(sp)
        sp.add_argument("--threshold", type=_positive, default=DEFAULT_THRESHOLD,
                        help=f"a class flags an image when its test z exceeds this: the complexity-corrected z of the "
                             f"error under the default --method (default {DEFAULT_THRESHOLD:g})")
        sp.add_argument("--method", choices=STATS_METHODS, default=STATS_METHODS[0],
                        help="z of the log error given the input's complexity (complexity, default), of the log "
                             "error (lognormal) or of the raw error (gaussian, the seeds')")
        sp.add_argument("--margin", type=_optional, default=DEFAULT_MARGIN, metavar="M",
                        help=f"a class also flags an image when another class's log error is lower by more than M "
                             f"(default {DEFAULT_MARGIN:g}); 'none' turns this off")
        sp.add_argument("--complexity", type=_optional, default=DEFAULT_COMPLEXITY, metavar="Z",
                        help=f"a class also flags an image whose input complexity z is beyond +-Z: its log complexity "
                             f"(zlib bits per value) more than Z standard deviations from the class's images' (default "
                             f"{DEFAULT_COMPLEXITY:g}): a blank page is no digit; 'none' turns this off")
        sp.add_argument("--classes", metavar="A,B,...", help="use these classes only")
        if skip_broken:
            sp.add_argument("--skip-broken", action="store_true", help="load the classes that are intact and say "
                            "which were skipped (default: refuse to run when any class is broken)")

    for name, func, help in (
        ("classify", cmd_classify, "per image: the class whose model reconstructs it best, or unknown"),
        ("score", cmd_score, "per image and class: error, z, Gaussian score, test z, p-value, margin, input "
                            "complexity z and flag with its reasons"),
    ):
        sp = add(name, func, help)
        sp.add_argument("paths", metavar="PATH", nargs="+", help="image files or folders of images")
        add_tests(sp)
        add_max_pixels(sp)

    sp = add("evaluate", cmd_evaluate, "evaluate the bank on labelled images; write a report (JSON, HTML, PNGs)")
    sp.add_argument("data", metavar="DATA", help="a folder with one sub-folder of images per class, or a folder of "
                    "MNIST IDX files")
    sp.add_argument("--split", choices=["train", "test"], default="test", help="IDX split to use (default test)")
    sp.add_argument("--out", metavar="DIR", default="bank-report", help="report folder (default ./bank-report)")
    sp.add_argument("--limit", type=int, metavar="N", help="at most N images per class")
    add_tests(sp)
    add_max_pixels(sp)

    sp = add("outliers", cmd_outliers, "rank a class's images by its model's error; list those past a quantile")
    sp.add_argument("class_name", metavar="CLASS")
    sp.add_argument("data", metavar="DATA", nargs="+", help="images or folders, as for 'bank train'")
    sp.add_argument("--quantile", type=float, default=0.999,
                    help="flag images past this quantile of the class's held-out errors (default 0.999; "
                         "one of 0.5, 0.9, 0.95, 0.99, 0.999)")
    sp.add_argument("--top", type=int, default=32, help="outliers shown in the montage (default 32)")
    add_runtime(sp)
    add_max_pixels(sp)
    sp.add_argument("--montage", metavar="PNG", help="montage file (default outliers-CLASS.png; 'none' for none)")

    rp = sub.add_parser("registry", help="check or clean the registry", description="check or clean the registry")
    rsub = rp.add_subparsers(dest="registry_command", required=True, metavar="ACTION")
    sp = rsub.add_parser("verify", parents=[common], description="Check every version of every class: its name, "
                         "card, model checksum, and that the model loads in Keras safe mode. Exit 1 if any is broken.",
                         help="check every entry: card, checksum, model loads in safe "
                         "mode; exit 1 if any is broken")
    sp.add_argument("--quick", action="store_true", help="check cards and checksums only; do not load the models")
    sp.set_defaults(func=cmd_verify)
    sp = rsub.add_parser("gc", parents=[common], help="remove the leftovers of interrupted writes",
                         description="Remove what interrupted writes left behind (hidden temporary folders whose "
                         "writer is gone, removed entries not yet deleted). Entries in use are never touched.")
    sp.set_defaults(func=cmd_gc)

    help = "serve the bank over HTTP: /v1/classify, /v1/score, /v1/classes, /v1/reload (docs at /docs)"
    sp = sub.add_parser("serve", help=help, description=help + ". Broken classes are skipped and listed. Needs "
                        "pip install -e '.[serve]'.")
    sp.set_defaults(func=cmd_serve)
    sp.add_argument("--registry", metavar="PATH", default=argparse.SUPPRESS,
                    help="registry folder (default: $BANK_REGISTRY, else ./registry)")
    sp.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, this machine only; any "
                    "other needs a token)")
    sp.add_argument("--port", type=int, default=8000, help="default 8000")
    sp.add_argument("--token", metavar="T", help=f"require the header 'Authorization: Bearer T' on every request but "
                    f"/healthz (default: ${TOKEN_ENV}, which keeps it out of the process list)")
    sp.add_argument("--max-batch", type=int, default=64, metavar="N",
                    help="most images per model call when gathering concurrent requests (default 64)")
    sp.add_argument("--max-wait-ms", type=float, default=5.0, metavar="MS",
                    help="how long a request waits for others to share its model call (default 5)")
    sp.add_argument("--max-upload-mb", type=_positive, default=20.0, metavar="MB",
                    help="most MiB one request may upload, all its files together (default 20)")
    sp.add_argument("--max-images", type=int, default=1000, metavar="N",
                    help="most images one request may carry (default 1000)")
    add_max_pixels(sp)
    sp.add_argument("--decode-pixels", type=_pixels, metavar="N", help="most pixels being decoded at once, all "
                    "requests together (default: --max-pixels, so memory for decoding is that of one largest image)")
    sp.add_argument("--max-inflight-mb", type=_positive, metavar="MB", help="most MiB of uploads held in memory at "
                    "once, all requests together (default 256, at least --max-upload-mb)")
    sp.add_argument("--queue-seconds", type=float, default=10.0, metavar="S", help="how long a request may wait for "
                    "room to be read and decoded before it is answered 503 with Retry-After (default 10)")
    add_tests(sp, skip_broken=False)

    help = "write the active bank as one TensorFlow SavedModel for TensorFlow Serving (OUT/NAME/VERSION)"
    sp = add("export", cmd_export, help)
    sp.description = (help + ". Signatures: serving_default (images, complexity) gives the router's default answer; "
                      "images_only (images) the answer without the complexity test. Every class must share one "
                      "input spec. See assets.extra/bank.json in the export for the inputs and the class order.")
    sp.add_argument("out", metavar="OUT", help="the models folder TensorFlow Serving reads (its --model_base_path "
                    "is OUT/NAME)")
    sp.add_argument("--name", default="bank", help="the model's name in TensorFlow Serving (default bank)")
    sp.add_argument("--version", type=int, help="the version folder (default: one past the highest in OUT/NAME)")
    add_tests(sp, skip_broken=False, runtime=False)  # the export is TensorFlow's

    sp = add("demo", cmd_demo, "train and test a digit bank on scikit-learn's bundled 8x8 digits (no data needed)")
    sp.add_argument("--epochs", type=int, default=60, help="most epochs per digit (default 60)")
    sp.add_argument("--seed", type=int, default=0, help="seeds the split and the training (default 0)")
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
        _say(f"bank {name}: interrupted")
        return 130
    except (BankError, OSError) as e:  # bank's own errors (input, registry, usage) and the machine's (disk, rights)
        return _failed(args, name, str(e), 1, debug)
    except Exception as e:  # anything else is a bug in bank: say so, and how to see where
        hint = "" if debug else f" (run again with --debug, or {DEBUG_ENV}=1, to see the traceback)"
        return _failed(args, name, f"internal error, a bug in bank: {type(e).__name__}: {e}{hint}", EXIT_BUG, debug)


def _failed(args: argparse.Namespace, name: str, message: str, status: int, debug: bool) -> int:
    """Report the error being handled in one line (with its traceback under ``debug``); return ``status``."""
    if debug:
        import traceback

        traceback.print_exc()
    _say(f"bank {name}: error: {message}")
    if getattr(args, "json", False):
        _emit_json({"error": message, "internal": status == EXIT_BUG})
    return status
