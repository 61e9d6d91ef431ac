"""How the package is built, in numbers: what issue 27 ("Every kind alike") measures before and after.

    python benchmarks/structure.py [--package bank] [--json]

Prints, for the package's source (read, never imported):

- **kind branches outside the kinds**: places outside ``<package>/kinds/`` that name a kind (a kind's name
  as a string in code, not in a docstring; or a name such as ``DEFAULT_KIND``), and places that probe a model
  for an optional member (``hasattr``/``getattr`` with a member's name as a string);
- **modules over 400 lines**;
- **the import graph**: its modules, its layers (the longest chain of imports, circles counted as one step),
  its circles and the imports within them (an import that runs back up a chain: from a module that another
  module it needs imports), every import counted, deferred ones (inside a function) too; and the imports
  that run up the package's declared layers (:data:`LAYERS`: images in, the verdict's maths, networks,
  kinds, the registry, answering, reports, training, the command line);
- **the longest functions**.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

#: Kind names, and the names that stand for one kind or a set of them, that only the kinds should hold.
KIND_NAMES = {"autoencoder", "pca", "hog-ocsvm", "ae-hog", "geotrans", "pretrained"}
KIND_SYMBOLS = {"DEFAULT_KIND", "WITH_AUTOENCODER", "EXPORTABLE", "is_autoencoder", "PHOTO_KIND",
                "AutoencoderDetector", "GeoTransModel", "PretrainedModel", "PCAModel", "HOGOCSVMModel", "AEHOGModel"}
#: Optional members a caller might probe a model for instead of reading what its kind declares.
PROBED = {"score_unit", "loss_label", "training_options", "reconstruct", "history_", "resumed_from_", "model_",
          "kind", "net_", "tf_scores", "shared_files", "group_scorer", "uses_complexity", "score_label"}


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under ``root`` (a package folder)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def docstring_nodes(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (a module's, class's or function's first statement)."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
        # a bare string statement anywhere (an attribute's docstring) is documentation too
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            ids.add(id(node.value))
    return ids


def kind_branches(name: str, tree: ast.AST) -> tuple[list[str], list[str]]:
    """(places naming a kind, places probing for an optional member) in one module, as 'line: what'."""
    docs = docstring_nodes(tree)
    named, probes = [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            if node.value in KIND_NAMES:
                named.append(f"{node.lineno}: {node.value!r}")
        elif isinstance(node, ast.Name) and node.id in KIND_SYMBOLS:
            named.append(f"{node.lineno}: {node.id}")
        elif isinstance(node, ast.Attribute) and node.attr in KIND_SYMBOLS:
            named.append(f"{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.alias) and node.name in KIND_SYMBOLS:
            named.append(f"{node.lineno}: import {node.name}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("hasattr", "getattr")
              and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and node.args[1].value in PROBED):
            probes.append(f"{node.lineno}: {node.func.id}(..., {node.args[1].value!r})")
    return named, probes


def imports(name: str, path: Path, tree: ast.AST, known: set[str]) -> set[str]:
    """The package's modules that module ``name`` imports (at the top or inside functions)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            subs = [f"{mod}.{a.name}" for a in node.names]
            # "from . import stats": the module stats, not the package it is in (unless a name is not a module)
            targets = subs + ([] if all(t in known for t in subs) else [mod])
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of ``graph`` (iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    out.append(sorted(comp))
    return out


def layers(graph: dict[str, set[str]], comps: list[list[str]]) -> int:
    """The longest chain of imports, each circle counted as one step."""
    comp_of = {m: i for i, c in enumerate(comps) for m in c}
    deps = {i: {comp_of[d] for m in c for d in graph[m]} - {i} for i, c in enumerate(comps)}
    depth: dict[int, int] = {}

    def d(i: int) -> int:
        if i not in depth:
            depth[i] = 1 + max((d(j) for j in deps[i]), default=0)
        return depth[i]

    sys.setrecursionlimit(10000)
    return max((d(i) for i in deps), default=0)


#: The package's layers, bottom to top, by module prefix: a module may import from its own layer and those
#: below it. Modules that match no prefix are left out of the count.
LAYERS = (
    ("bank.errors", "bank.digest", "bank.machine", "bank.version", "bank._quiet"),
    ("bank.io",),
    ("bank.verdict",),
    ("bank.nets", "bank.backbones"),
    ("bank.kinds",),
    ("bank.registry",),
    ("bank.answering",),
    ("bank.reports",),
    ("bank.training",),
    ("bank.demo", "bank.cli", "bank.__main__", "bank"),
)


def layer_of(module: str) -> int | None:
    """The index in :data:`LAYERS` of ``module`` (the longest matching prefix), None when none matches."""
    best = None
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            inside = module == p or (module.startswith(p + ".") and p != "bank")  # the root: its __init__ only
            if inside and (best is None or len(p) > best[1]):
                best = (i, len(p))
    return None if best is None else best[0]


def upward(graph: dict[str, set[str]]) -> list[str]:
    """Imports from a module to one in a higher layer (:data:`LAYERS`)."""
    out = []
    for m, deps in graph.items():
        for d in deps:
            a, b = layer_of(m), layer_of(d)
            if a is not None and b is not None and b > a:
                out.append(f"{m} -> {d}")
    return sorted(out)


def functions(tree: ast.AST, name: str) -> list[tuple[int, str]]:
    """(lines, 'module.function') of every function and method."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for f in node.body:
                if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    out.append((f.end_lineno - f.lineno + 1, f"{name}.{node.name}.{f.name}"))
        elif isinstance(node, ast.Module):
            for f in node.body:
                if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    out.append((f.end_lineno - f.lineno + 1, f"{name}.{f.name}"))
    return out


def measure(root: Path) -> dict:
    mods = modules(root)
    trees = {m: ast.parse(p.read_text(encoding="utf-8"), str(p)) for m, p in mods.items()}
    pkg = root.name
    outside = {m: t for m, t in trees.items() if not m.startswith(f"{pkg}.kinds")}
    branches, probes = {}, {}
    for m, t in outside.items():
        named, probed = kind_branches(m, t)
        if named:
            branches[m] = named
        if probed:
            probes[m] = probed
    graph = {m: imports(m, mods[m], t, set(mods)) for m, t in trees.items()}
    # a package imports its modules to re-export them: that is not a dependence of the package's code
    comps = strongly_connected(graph)
    circles = [c for c in comps if len(c) > 1]
    in_circle = {m: i for i, c in enumerate(circles) for m in c}
    back = sorted(f"{m} -> {d}" for m, ds in graph.items() for d in ds
                  if m in in_circle and in_circle.get(d) == in_circle[m])
    lines = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in mods.items()}
    funcs = sorted((f for m, t in trees.items() for f in functions(t, m)), reverse=True)
    top = [m for m in mods if m.count(".") == 1 and mods[m].name != "__init__.py"]
    return {
        "modules": len(mods),
        "modules_at_top": len(top),
        "sub_packages": sorted(m for m, p in mods.items() if p.name == "__init__.py" and m != pkg),
        "kind_names_outside_kinds": sum(len(v) for v in branches.values()),
        "kind_names_by_module": branches,
        "probes_outside_kinds": sum(len(v) for v in probes.values()),
        "probes_by_module": probes,
        "modules_over_400_lines": {m: n for m, n in sorted(lines.items(), key=lambda x: -x[1]) if n > 400},
        "layers": layers(graph, comps),
        "import_circles": circles,
        "imports_within_circles": back,
        "upward_imports": upward(graph),
        "longest_functions": [{"function": f, "lines": n} for n, f in funcs[:8]],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--package", default=str(Path(__file__).resolve().parents[1] / "bank"), help="the package folder")
    p.add_argument("--json", action="store_true", help="print the measures as JSON")
    args = p.parse_args(argv)
    m = measure(Path(args.package))
    if args.json:
        print(json.dumps(m, indent=2))
        return 0
    print(f"modules: {m['modules']} ({m['modules_at_top']} at the top, sub-packages: "
          f"{', '.join(m['sub_packages']) or 'none'})")
    print(f"kind names outside the kinds: {m['kind_names_outside_kinds']}")
    for mod, where in m["kind_names_by_module"].items():
        print(f"  {mod}: {'; '.join(where)}")
    print(f"probes for optional members outside the kinds: {m['probes_outside_kinds']}")
    for mod, where in m["probes_by_module"].items():
        print(f"  {mod}: {'; '.join(where)}")
    print(f"modules over 400 lines: {len(m['modules_over_400_lines'])}"
          + "".join(f"\n  {mod}: {n}" for mod, n in m["modules_over_400_lines"].items()))
    print(f"layers: {m['layers']}; import circles: {len(m['import_circles'])} "
          f"({sum(map(len, m['import_circles']))} modules), imports within them: {len(m['imports_within_circles'])}")
    for c in m["import_circles"]:
        print(f"  circle: {', '.join(c)}")
    print(f"imports from a lower layer up to a higher one (layers: {' < '.join('/'.join(p) for p in LAYERS)}): "
          f"{len(m['upward_imports'])}")
    for u in m["upward_imports"][:40]:
        print(f"  {u}")
    print("longest functions:")
    for f in m["longest_functions"]:
        print(f"  {f['lines']:4d}  {f['function']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
