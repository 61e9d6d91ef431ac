"""``bank list``, ``show``, ``activate``, ``remove`` and ``registry verify|gc``: the registry's entries."""

from __future__ import annotations

import argparse

from ..verdict import stats as st
from ..registry.store import RegistryError
from ..kinds import kind_class
from ..registry.summary import SKIPPED_SHOWN, entry_summary
from .common import CommandError, emit_json, pairs, registry_of, say, table


def cmd_list(args: argparse.Namespace) -> int:
    reg = registry_of(args)
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
                    "kind": e.kind, "architecture": kind_class(e.kind).describe(e.card.get("params") or {})[0],
                    "stats": s.to_dict(),
                    "created": e.card.get("created"), "broken": None}
            rows.append([name, active, ",".join(map(str, item["versions"])), str(e.spec), item["architecture"],
                         s.n, s.mean, s.std, item["created"]])
        except RegistryError as err:
            item = {"class": name, "versions": reg.versions(name), "broken": str(err)}
            rows.append([name, "BROKEN", ",".join(map(str, item["versions"])), str(err), "", "", "", "", ""])
        out.append(item)
    if args.json:
        emit_json({"registry": str(reg.root), "classes": out})
    elif not rows:
        print(f"no classes in {reg.root} (train one with 'bank train CLASS DATA', or run 'bank demo')")
    else:
        print(table(rows, ["class", "active", "versions", "input", "model", "n", "mean err", "std err", "created"]))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    m = entry_summary(registry_of(args), args.class_name, args.version)
    if m.broken is not None:
        say(f"warning: {m.broken}")
    if args.json:
        emit_json(m.to_json())
        return 0
    e, s, t = m.entry, m.stats, m.training
    print(f"class {e.class_name!r} version {e.version} ({e.path})")
    print(f"  created      {m.created}")
    print(f"  input        {e.spec}")
    print(f"  model        {m.model}, {pairs(m.model_params)}")
    resumed = f", went on from epoch {m.resumed_from_epoch} of an interrupted run" if m.resumed_from_epoch else ""
    resumed += "" if m.convergence == "settled" else f"; NOT FINISHED: {m.convergence} (see the warning below)"
    monitor = f"{t['n_monitor']} early-stopping / " if "n_monitor" in t else ""
    epochs = f"; {t['epochs_run']} epochs (best {t.get('best_epoch')})," if "epochs_run" in t else ","
    print(f"  training     {t.get('n_train')} train / {monitor}{t.get('n_calibration')} calibration images{epochs}"
          f" seed {t.get('seed')}{resumed}")
    if m.skipped_count:
        more = (f" and {m.skipped_count - SKIPPED_SHOWN} more (--json lists up to 100)"
                if m.skipped_count > SKIPPED_SHOWN else "")
        print(f"  skipped      {m.skipped_count} unreadable file(s) when training: {', '.join(m.skipped_shown)}{more}")
    unit = kind_class(e.kind).score_label  # declared on the kind
    print(f"  error stats  mean {s.mean:.6g}, std {s.std:.6g}, n {s.n} ({unit} on held-out images)")
    print("  quantiles    " + ", ".join(f"q{k} {v:.6g}" for k, v in s.quantiles.items()))
    print(f"  log error    mean {s.log_mean:.6g}, std {s.log_std:.6g}")
    z, cut, cx = m.threshold, m.error_cuts, m.complexity
    if cx is not None:
        lo, hi = cx.accepted
        if cx.line_fitted:
            line = f"log error changes by {cx.slope:.3g} per log bit; residual std {cx.residual_std:.6g}"
        else:
            line = (f"no line fitted (fewer than {st.MIN_COMPLEXITY_SAMPLES} held-out images): the complexity-"
                    "corrected z is the lognormal z")
        print(f"  complexity   {cx.typical:.4g} bits/value typical; {line}")
        print(f"  flags        complexity-corrected z of the error > {z:g}: error > "
              f"{cut['complexity']:.6g} at typical complexity (default); "
              f"|{st.INPUT_COMPLEXITY_LABEL}| > {m.complexity_threshold:g}: input outside {lo:.3g}..{hi:.3g} bits/value")
    else:
        why = ("registered before complexity statistics" if kind_class(e.kind).uses_complexity
               else f"a {e.kind} score does not grow with how busy an input is")
        print(f"  complexity   not fitted ({why}): lognormal is used, no complexity test")
    print(f"  {'other rules' if cx is not None else 'flags':<12} lognormal z > {z:g}: error > "
          f"{cut['lognormal']:.6g}; "
          f"gaussian z > {z:g}: error > {cut['gaussian']:.6g};"
          f" and, in a bank, margin > {m.margin:g} (another class's error lower by more than "
          f"{m.margin_share:.0%})"
          " (change with --method, --threshold, --margin, --complexity)")
    for w in m.warnings:
        print(f"  warning      {w}")
    print(f"  made with    {pairs(m.made_with)}")
    for file, sha256 in m.checksums:
        print(f"  sha256       {sha256} ({file})")
    return 0



def cmd_remove(args: argparse.Namespace) -> int:
    reg = registry_of(args)
    names = list(dict.fromkeys(args.class_names))
    if args.version is not None and len(names) > 1:
        raise CommandError(f"--version removes one version of one class; got {len(names)} classes ({', '.join(names)})")
    for name in names:  # every class checked before any is removed: a typo removes nothing
        if not reg.versions(name):
            raise CommandError(f"no class {name!r} in {reg.where} (classes: {', '.join(reg.classes()) or 'none'}); "
                               "nothing removed")
    done = []
    for name in names:
        removed = reg.remove(name, args.version)
        active = reg.active_version(name) if reg.versions(name) else None
        done.append({"class": name, "removed": removed, "active": active})
        if args.json:
            continue
        if active is None:
            print(f"removed class {name!r} (version(s) {', '.join(map(str, removed))}); it has no versions left")
        else:
            print(f"removed class {name!r} version {removed[0]}; active version: {active}")
    if args.json:
        emit_json(done[0] if len(done) == 1 else {"classes": done})
    return 0


def cmd_activate(args: argparse.Namespace) -> int:
    registry_of(args).activate(args.class_name, args.version)
    if args.json:
        emit_json({"class": args.class_name, "active": args.version})
    else:
        print(f"class {args.class_name!r}: version {args.version} is active")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    reg = registry_of(args)
    problems = reg.verify(load=not args.quick)
    entries = sum(len(reg.versions(c)) for c in reg.classes())
    leftovers = reg.leftovers()
    if args.json:
        emit_json({"registry": str(reg.root), "ok": not problems, "entries": entries,
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
    reg = registry_of(args)
    gone = reg.gc()
    if args.json:
        emit_json({"registry": str(reg.root), "removed": [str(p) for p in gone]})
    else:
        for p in gone:
            print(f"removed {p}")
        print(f"{reg.root}: removed {len(gone)} leftover(s) of interrupted writes")
    return 0


def register(add, sub, common: argparse.ArgumentParser) -> None:
    """Add the registry commands (``add(name, func, help)`` makes a sub-parser with the common options; ``sub``
    the sub-parsers, for the ``registry`` group; ``common`` the options every command takes)."""
    add("list", cmd_list, "list the classes, their versions and which is active")

    sp = add("show", cmd_show, "show a class model's card: input, training, error statistics")
    sp.add_argument("class_name", metavar="CLASS")
    sp.add_argument("--version", type=int, help="a version (default: the active one)")

    sp = add("remove", cmd_remove, "remove classes, or one version of a class")
    sp.add_argument("class_names", metavar="CLASS", nargs="+",
                    help="one or more classes (all checked first: a missing one removes nothing); --json prints "
                    "{class, removed, active} for one, {classes: [...]} for several")
    sp.add_argument("--version", type=int, help="remove only this version (of one class)")

    sp = add("activate", cmd_activate, "make a version of a class the active one (roll back or forward)")
    sp.add_argument("class_name", metavar="CLASS")
    sp.add_argument("version", metavar="VERSION", type=int)

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
