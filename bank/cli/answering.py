"""``bank classify``, ``score``, ``evaluate`` and ``outliers``: images through the bank, and what it says."""

from __future__ import annotations

import numpy as np

import argparse
from pathlib import Path

from ..verdict import stats as st
from ..verdict.decision import skipped_json
from .common import (CommandError, add_max_pixels, add_runtime, add_tests, classes_option, emit_json, fdr_rate, fmt,
                     registry_of, report_skipped, say, table)


def _class_data(args: argparse.Namespace, **decoding) -> tuple:
    """The images of one class that DATA points at: (images, names, skipped), skipped reported
    (``decoding``: see :func:`bank.io.data.load_images`)."""
    from ..io.data import Loaded, class_images

    data = class_images(args.data, args.class_name, **decoding)
    if not isinstance(data, Loaded):  # an IDX array
        return data, [f"{args.class_name} #{i}" for i in range(len(data))], []
    report_skipped(data.skipped)
    if not data.images:
        raise CommandError(f"no readable images for class {args.class_name!r} in {', '.join(map(str, args.data))}")
    return data.images, data.names, data.skipped


#: A bank compared relative warns of a class whose kind of score rests on fewer held-out images than this.
FEW_TO_RANK = 30


def _router(args: argparse.Namespace):
    from ..answering.router import Router

    classes = classes_option(args)
    router = Router.from_registry(registry_of(args), classes, threshold=args.threshold, method=args.method,
                                  margin=args.margin, complexity_threshold=args.complexity, compare=args.compare,
                                  skip_broken=args.skip_broken, runtime=args.runtime)
    for name, reason in router.skipped:
        say(f"skipped a broken class: {reason}")
    if len(router.groups) > 1 and not args.classes:
        looks = "; ".join(f"{', '.join(router.classes[k] for k in ks[:4])}{' ...' if len(ks) > 4 else ''} at {spec}"
                          for spec, ks in router.groups.items())
        say(f"note: this bank mixes classes of unlike inputs ({looks}), compared {router.comparison}: an image "
            "of one may be named as another; --classes A,B answers with some of them")
    if router.comparison == "relative" and len(set(router.columns.units)) > 1:  # one unit: one spread, fair to all
        for c, n in zip(router.classes, router.columns.unit_held_out().tolist()):
            if n < FEW_TO_RANK:
                say(f"note: class {c!r} is ranked beside the others by its score relative to its kind's spread, "
                    f"which rests on {n} held-out images: so few give a rough spread, and it may win images of "
                    "other classes; give it more images, or train it the kind the others are")
    for c, s in zip(router.classes, router.stats):
        if router.detectors[c].uses_complexity and st.effective_method(s, router.method) != router.method:
            say(f"class {c!r} has no complexity statistics (registered before them): it uses the lognormal z and "
                 "no complexity test; retrain it to get them")
    return router


def _route(args: argparse.Namespace):
    router = _router(args)
    result, skipped = router.score_files(args.paths, max_pixels=args.max_pixels)
    report_skipped(skipped)
    if result is None:
        raise CommandError(f"no readable images in {', '.join(args.paths)}", skipped=skipped_json(skipped),
                           skipped_classes=skipped_json(router.skipped, "class"))
    return result, skipped, router.skipped


def cmd_classify(args: argparse.Namespace) -> int:
    result, *skipped = _route(args)
    if args.json:
        emit_json(result.to_json(*skipped))
        return 0
    rows, doubtful = classify_rows(result)
    print(table(rows, ["image", "label", "nearest", "its error", "its test z", "note"]))
    if doubtful:
        lowest = "lowest error" if result.compare == "raw" else "lowest relative error (the bank compares relative errors)"
        print(f"{doubtful} image(s) labelled by a class other than the one of {lowest}, which flags them (the "
              "label is the nearest class that accepts the image): look at 'bank score' for these")
    return 0


def classify_rows(result) -> tuple[list[list[object]], int]:
    """``classify``'s table rows (image, label, nearest, the label's error and test z, note), and how many images
    the nearest class flags while another, the label, accepts them."""
    from ..reports.presentation import flag_tags

    rows, doubtful = [], 0
    for i, rec in enumerate(result.records()):
        near = result.classes.index(rec["nearest"])
        k = near if rec["unknown"] else result.classes.index(rec["label"])
        if rec["unknown"]:
            note = "unknown: " + "; ".join(result.reasons(i, k))
        elif k != near:  # the nearest class itself says no; the label is the nearest that accepts the image
            doubtful += 1
            note = f"{rec['nearest']} is nearer but flags it ({', '.join(flag_tags(result, i, near))})"
        else:
            note = ""
        rows.append([rec["image"], rec["label"] or "unknown", rec["nearest"], result.errors[i, k],
                     result.test_z[i, k], note])
    return rows, doubtful


def cmd_score(args: argparse.Namespace) -> int:
    result, *skipped = _route(args)
    if args.json:
        emit_json(result.to_json(*skipped))
        return 0
    from ..reports.presentation import flag_cell, flag_tags

    rows = []
    for i, name in enumerate(result.names):
        for k, c in enumerate(result.classes):
            cz = result.complexity_z[i, k] if result.complexity_z is not None else None
            rows.append([name, c, result.errors[i, k], result.z[i, k], result.score[i, k], result.test_z[i, k],
                         result.p_value[i, k], _shown(result.margin[i, k]), _shown(cz),
                         flag_cell(flag_tags(result, i, k))])
    print(table(rows, ["image", "class", "error", "z", "score", "test z", "p", "margin", "input cx z", "flag"]))
    used = dict.fromkeys(result.method_of(k) for k in range(len(result.classes)))
    named = " or the ".join(st.METHOD_LABELS[m] for m in used)
    which = "" if len(used) < 2 else " (each class's own: --json names it per class)"
    print(f"z, score: the seeds' Gaussian on the raw error; test z: the {named} of the "
          f"error{which}, the flag's first test (p its upper tail); margin: "
          + ("log error minus the best other class's" if result.compare == "raw" else
             "relative log error minus the best other class's (the bank compares relative errors)")
          + "; input cx "
          f"z: the {st.INPUT_COMPLEXITY_LABEL}, the input's zlib bits per value against the class's images (a "
          "different quantity); -: none (no other class accepts the image; a class without complexity "
          "statistics); flag: the tests that fired")
    return 0


def _shown(v: float | None) -> float | str:
    """A number for the table, or "-" where there is none (NaN, None)."""
    return "-" if v is None or not np.isfinite(v) else float(v)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..io.data import load_labelled_images
    from ..reports.presentation import describe_rule
    from ..io.images import to_spec
    from ..reports.report import write_report

    router = _router(args)
    keep = router.common_spec  # the images are kept for the report: at the bank's size, not the files'
    data = load_labelled_images(args.data, args.split, args.limit, fit=router.decode_size, max_pixels=args.max_pixels,
                                transform=lambda img: to_spec([img], keep)[0])
    report_skipped(data.skipped)
    if not data.truth:
        raise CommandError(f"no readable images in {args.data}")
    say(f"evaluating {len(router.classes)} class(es) on {len(data.truth)} image(s) of {args.data}")
    f = write_report(args.out, router, data.images, data.truth, data.names)
    f["skipped"], f["skipped_classes"] = skipped_json(data.skipped), skipped_json(router.skipped, "class")
    if args.json:
        emit_json(f)
        return 0
    foreign = f["n_foreign"]
    print(f"{f['n_images']} images: {f['n_known']} of the bank's {len(f['classes'])} classes, {foreign} foreign"
          + (f" (of classes outside the bank: {', '.join(f['foreign_classes'])})" if foreign else ""))
    print("flags: a class says \"not this class\" when "
          f"{describe_rule(f['method'], f['threshold'], f['margin'], f['complexity_threshold'], f.get('compare', 'raw'))}")
    print(f"argmin accuracy {f['accuracy']:.4f} (on the images of the bank's classes); labels right "
          f"{f['accuracy_with_unknown']:.4f} (what classify answers: unknown, or a class other than the nearest "
          f"when the nearest flags the image, counted wrong); mean AUROC "
          f"{fmt(f['auroc_mean'])}; false reject {_percent(f['false_reject'])}; false accept {_percent(f['false_accept'])}")
    print(f"called unknown: {f['unknown_rate']:.2%} of the images of the bank's classes ({f['n_unknown']} of "
          f"{f['n_known']}; should be low)")
    if foreign:
        print(f"called unknown: {f['foreign_unknown_rate']:.2%} of the foreign images ({f['n_foreign_unknown']} of "
              f"{foreign}; should be high)")
    else:
        print("called unknown, foreign images: none given (a sub-folder of DATA named after no class of the bank "
              "measures it: images the bank should call unknown)")
    keys = ["n_own", "auroc", "false_reject", "false_accept", "welch_t", "error_mean_own", "error_mean_other"]
    if foreign:  # AUROC counts foreign images among the "others": say so, and give it without them
        keys.insert(2, "auroc_known")
    print(table([[c] + [v[k] for k in keys] for c, v in f["per_class"].items()], ["class"] + keys))
    if foreign:
        print("auroc: the class's own images against every other image, foreign ones included; auroc_known: "
              "against the images of the bank's other classes only")
    if f["training_warnings"]:
        print("training warnings (from the classes' cards; 'bank show CLASS' shows the card):")
        for c, warnings in f["training_warnings"].items():
            for w in warnings:
                print(f"  class {c!r}: {w}")
    print(f"report: {f['report']}/report.html")
    return 0


def _percent(v: float | None) -> str:
    return "n/a" if v is None or v != v else f"{v:.2%}"


def cmd_outliers(args: argparse.Namespace) -> int:
    from ..reports.presentation import describe_outliers
    from ..io.images import to_spec
    from ..reports.outliers import describe_fdr, find_outliers

    if args.fdr and args.quantile is not None:
        raise CommandError("--quantile and --fdr are two ways to pick outliers: give one")
    args.quantile = 0.999 if args.quantile is None else args.quantile
    det = registry_of(args).load_detector(args.class_name, runtime=args.runtime)
    spec = det.spec_
    images, names, skipped = _class_data(args, fit=(spec.height, spec.width), max_pixels=args.max_pixels,
                                         transform=lambda img: to_spec([img], spec)[0])
    found = find_outliers(det, images, names, args.quantile, args.class_name, fdr=args.fdr)
    if found.warning:
        say(f"warning: {found.warning}")
    rows, label = found.rows, found.label
    montage = None
    if len(found.order) and args.montage != "none" and det.reconstructs:  # kinds that rebuild images
        from ..io.images import take
        from ..reports.report import plot_montage

        top = found.order[: args.top]
        x, rec = det.reconstruct(take(images, top))
        montage = str(plot_montage(
            Path(args.montage or f"outliers-{args.class_name}.png"), x, rec,
            [f"#{r['rank']} {Path(r['image']).name}: " + (f"p {r['conformal_p_value']:.2g}" if args.fdr else
                                                          f"error {r['times_cut']:.2f}x the cut")
             + f", {label} {r['test_z']:.1f}" for r in rows[: args.top]]))
    if args.json:
        emit_json(found.to_json(montage, skipped))
        return 0
    if args.fdr:
        before, after = describe_fdr(found, args.top, montage is not None)
    else:
        before, after = describe_outliers(args.class_name, found.n_images, len(rows), args.quantile, found.cut,
                                          args.top, found.past_each_quantile, montage is not None, label)
    print("\n".join(before))
    if rows and args.fdr:
        print(table([[r["rank"], r["image"], r["error"], f"{r['conformal_p_value']:.3g}", r["test_z"]] for r in rows],
                    ["rank", "image", "error", "conformal p-value", label]))
    elif rows:
        print(table([[r["rank"], r["image"], r["error"], f"{r['times_cut']:.2f}x", r["test_z"]] for r in rows],
                     ["rank", "image", "error", "times the cut", label]))
    if after:
        print("\n".join(after))
    if montage:
        print(f"montage: {montage}")
    elif len(found.order) and args.montage != "none":
        print(f"no montage: a {det.kind} model does not rebuild images")
    return 0


def register(add) -> None:
    """Add the commands that answer (``add(name, func, help)`` makes a sub-parser with the common options)."""
    for name, func, help in (
        ("classify", cmd_classify, "per image: the class whose model fits it best (the lowest error among those that accept it), or unknown"),
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
    sp.add_argument("--quantile", type=float,
                    help="flag images past this quantile of the class's held-out errors (default 0.999; "
                         "one of 0.5, 0.9, 0.95, 0.99, 0.999)")
    sp.add_argument("--fdr", type=fdr_rate, metavar="Q",
                    help="instead of a quantile: pick the outliers with the false discovery rate held at Q (such as "
                         "0.1: at most 10%% of those picked expected to be normal), by Benjamini-Hochberg on each "
                         "image's conformal p-value (the share of the class's held-out errors at least as high)")
    sp.add_argument("--top", type=int, default=32, help="outliers shown in the montage (default 32)")
    add_runtime(sp)
    add_max_pixels(sp)
    sp.add_argument("--montage", metavar="PNG", help="montage file (default outliers-CLASS.png; 'none' for none)")
