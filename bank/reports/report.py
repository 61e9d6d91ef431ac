"""The evaluation report: figures as JSON, pictures as PNG, one self-contained HTML page.

Plots use matplotlib's object API (``Figure``), not pyplot, so no global
backend state is touched and nothing needs a display.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from scipy import stats as sps

from ..verdict import stats as st
from .evaluate import evaluate
from .presentation import describe_rule, training_warnings, unfinished_trainings
from ..io.images import take
from ..verdict.decision import BankResult
from ..answering.router import Router

#: Pairs per montage row (at most).
MONTAGE_COLUMNS = 4
#: Width of one image of a montage, inches; its titles' font size, points; their most lines.
MONTAGE_IMAGE_INCHES = 1.2
MONTAGE_FONT_SIZE = 8
MONTAGE_TITLE_LINES = 3


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=90, bbox_inches="tight")
    return path


def plot_histogram(path: Path, name: str, errors: np.ndarray, own: np.ndarray, stats, threshold: float,
                   method: str = "complexity", what: str = "reconstruction error (per-pixel MSE)") -> Path:
    """In-class against out-of-class errors of one class, with the fitted curves and the flag threshold."""
    cut = st.error_cut(stats, threshold, method)
    hi = max(cut * 1.5, float(np.quantile(errors[own], 0.995)) if own.any() else cut,
             float(np.quantile(errors[~own], 0.9)) if (~own).any() else cut)
    bins = np.linspace(0.0, hi, 60)
    fig = Figure(figsize=(6, 3.4))
    ax = fig.add_subplot()
    if (~own).any():
        ax.hist(np.clip(errors[~own], 0, hi), bins=bins, density=True, alpha=0.5, color="tab:red",
                label=f"other classes (n={int((~own).sum())})")
    if own.any():
        ax.hist(np.clip(errors[own], 0, hi), bins=bins, density=True, alpha=0.6, color="tab:blue",
                label=f"class {name} (n={int(own.sum())})")
    x = np.linspace(hi / 1000, hi, 400)
    ax.plot(x, sps.lognorm.pdf(x + stats.log_shift, s=stats.log_std, scale=np.exp(stats.log_mean)), color="black", lw=1.2,
            ls=":" if method == "gaussian" else "-", label="fitted lognormal")
    ax.plot(x, sps.norm.pdf(x, stats.mean, stats.std), color="gray", lw=1.2,
            ls="-" if method == "gaussian" else ":", label="fitted normal (the seeds')")
    where = " at typical complexity" if st.effective_method(stats, method) == "complexity" else ""
    ax.axvline(cut, color="black", ls="--", lw=1,
               label=f"flag: {st.METHOD_LABELS[method]} > {threshold:g} (error > {cut:.3g}{where})")
    ax.set_xlabel(f"{what}; the last bin holds all larger")
    ax.set_ylabel("density")
    ax.set_title(f"class {name}: held-out fit, and the errors of the evaluated images")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_confusion(path: Path, confusion: dict) -> Path:
    counts = np.asarray(confusion["counts"])
    rows, cols = confusion["rows"], confusion["columns"]
    fig = Figure(figsize=(1 + 0.55 * len(cols), 0.8 + 0.5 * len(rows)))
    ax = fig.add_subplot()
    ax.imshow(counts / np.maximum(counts.sum(axis=1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            if counts[i, j]:
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("verdict")
    ax.set_ylabel("true class")
    return _save(fig, path)


def plot_montage(path: Path, originals: np.ndarray, recons: np.ndarray, titles: Sequence[str]) -> Path:
    """Originals beside their reconstructions, up to ``MONTAGE_COLUMNS`` pairs a row, each pair under its title
    (see :func:`montage_figure`), as a PNG at ``path``."""
    return _save(montage_figure(originals, recons, titles), path)


def montage_figure(originals: np.ndarray, recons: np.ndarray, titles: Sequence[str]) -> Figure:
    """Originals beside their reconstructions, up to ``MONTAGE_COLUMNS`` pairs a row, each pair under its title.

    Titles are wrapped (measured, not guessed) to the width of their pair and at most ``MONTAGE_TITLE_LINES``
    lines (the middle of a longer one elided), and each row leaves room for the most lines any title takes:
    no title overlaps a neighbour or an image, none is cut.
    """
    n = len(originals)
    cols = max(1, min(MONTAGE_COLUMNS, n))
    rows = max(1, -(-n // cols))
    h, w = originals.shape[1:3] if n else (1, 1)
    box = MONTAGE_IMAGE_INCHES
    scale = box / max(h, w)  # each image fits a box x box square, its aspect kept
    img_w, img_h = w * scale, h * scale
    gap, pair_gap = 0.06, 0.3  # inches: between an image and its reconstruction; between pairs
    pair_w = 2 * box + gap  # a pair's slot, its title's width; the images centred in it
    pad = (pair_w - (2 * img_w + gap)) / 2
    fig = Figure()
    font = FontProperties(size=MONTAGE_FONT_SIZE)
    wrapped = [_wrap(str(t), pair_w * 72, font) for t in titles]
    line_h = MONTAGE_FONT_SIZE * 1.3 / 72
    title_h = max((len(t) for t in wrapped), default=1) * line_h + 0.08
    header_h = 0.3
    fig_w = cols * pair_w + (cols - 1) * pair_gap
    fig_h = header_h + rows * (title_h + img_h) + (rows - 1) * 0.15
    fig.set_size_inches(fig_w, fig_h)
    fig.text(0.5, 1 - 0.05 / fig_h, "each pair: the image (left) and its reconstruction (right)", ha="center",
             va="top", fontsize=MONTAGE_FONT_SIZE, color="0.35")
    for i in range(n):
        r, c = divmod(i, cols)
        x0 = c * (pair_w + pair_gap)
        top = fig_h - header_h - r * (title_h + img_h + 0.15)  # inches from the bottom
        fig.text((x0 + pair_w / 2) / fig_w, (top - title_h + 0.04) / fig_h, "\n".join(wrapped[i]),
                 ha="center", va="bottom", fontproperties=font, linespacing=1.15)
        for j, img in enumerate((originals[i], recons[i])):
            ax = fig.add_axes(((x0 + pad + j * (img_w + gap)) / fig_w, (top - title_h - img_h) / fig_h,
                               img_w / fig_w, img_h / fig_h))
            ax.imshow(np.clip(img.squeeze(-1) if img.shape[-1] == 1 else img, 0, 1), cmap="gray", vmin=0, vmax=1,
                      aspect="auto")
            ax.set_xticks([])
            ax.set_yticks([])
    return fig


def _wrap(text: str, width_pt: float, font: FontProperties) -> list[str]:
    """``text`` in lines no wider than ``width_pt`` points in ``font``: broken after spaces, slashes, dashes,
    and underscores where it can, anywhere in a word too long for a line; at most ``MONTAGE_TITLE_LINES``
    lines, the middle elided with an ellipsis when it needs more."""
    renderer = RendererAgg(1, 1, 72)  # at 72 dpi a pixel is a point: widths as the text is laid out and drawn
    limit = 0.96 * width_pt  # and a little room for hinting

    def width(s: str) -> float:
        return renderer.get_text_width_height_descent(s, font, ismath=False)[0] if s else 0.0

    lines, line = [], ""
    for token in re.findall(r"[^ /_\-]*[ /_\-]?", text):
        if not token:
            continue
        if width(line + token.rstrip()) <= limit:
            line += token
            continue
        if line:
            lines.append(line.rstrip())
            line = ""
        while width(token.rstrip()) > limit:  # a word wider than a line: break it where it must
            k = max(1, max(j for j in range(1, len(token) + 1) if width(token[:j]) <= limit or j == 1))
            lines.append(token[:k])
            token = token[k:]
        line = token
    if line.strip():
        lines.append(line.rstrip())
    if len(lines) > MONTAGE_TITLE_LINES:  # keep the start and the end (a file's name), elide the middle
        head = lines[0]
        while head and width(head + "…") > limit:
            head = head[:-1]
        lines = [head + "…"] + lines[-(MONTAGE_TITLE_LINES - 1):]
    return lines or [""]


def plot_losses(path: Path, histories: dict[str, dict],
                ylabel: str = "MSE (solid: training, dashed: early-stopping set)") -> Path:
    """Training and early-stopping loss per epoch of each class, from the history saved at training time."""
    fig = Figure(figsize=(6, 3.4))
    ax = fig.add_subplot()
    for k, (name, h) in enumerate(histories.items()):
        color = f"C{k % 10}"
        if h.get("loss"):
            ax.plot(range(1, len(h["loss"]) + 1), h["loss"], color=color, lw=1, label=name)
        if h.get("val_loss"):
            ax.plot(range(1, len(h["val_loss"]) + 1), h["val_loss"], color=color, lw=1, ls="--")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=6, ncol=2)
    return _save(fig, path)


def reconstruction_montage(path: Path, router: Router, images, pairs: Sequence[tuple[int, str]],
                           titles: Sequence[str]) -> Path:
    """Montage of image ``i`` beside its reconstruction by class ``c``, for each ``(i, c)``."""
    originals, recons = [None] * len(pairs), [None] * len(pairs)
    for c in dict.fromkeys(c for _, c in pairs):  # one model call per class, not per image
        slots = [j for j, (_, cj) in enumerate(pairs) if cj == c]
        x, r = router.detectors[c].reconstruct(take(images, [pairs[j][0] for j in slots]))
        for j, xo, ro in zip(slots, x, r):
            originals[j], recons[j] = xo, ro
    if len({o.shape for o in originals}) > 1:  # mixed specs: each at its own size, padded to the largest
        h = max(o.shape[0] for o in originals)
        w = max(o.shape[1] for o in originals)
        originals, recons = [_pad_rgb(o, h, w) for o in originals], [_pad_rgb(r, h, w) for r in recons]
    return plot_montage(path, np.stack(originals), np.stack(recons), titles)


def _short(name: str) -> str:
    """An image's name as a montage title gives it: a path's last folder and file name."""
    return "/".join(Path(name).parts[-2:])


def _pad_rgb(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """An (H, W, 1 or 3) image as RGB, padded with black to (h, w, 3)."""
    rgb = np.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img
    return np.pad(rgb, ((0, h - img.shape[0]), (0, w - img.shape[1]), (0, 0)))


def write_report(out: str | Path, router: Router, images, truth: Sequence[str], names: Sequence[str],
                 *, seed: int = 0, per_class_examples: int = 2, worst: int = 12) -> dict:
    """Route ``images`` (true classes ``truth``), write the report folder, return the figures."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result: BankResult = router.score(images, names=names)
    figures = evaluate(result, truth)
    truth = np.asarray([str(t) for t in truth])
    pictures: dict[str, str] = {}

    for k, c in enumerate(result.classes):
        d = router.detectors[c]
        what = "reconstruction error (per-pixel MSE)" if d.score_unit == st.PIXEL_MSE else f"the {d.kind} score"
        p = plot_histogram(out / f"hist_{k:03d}.png", c, result.errors[:, k], truth == c, router.stats[k],
                           result.threshold, result.method, what)
        pictures[f"histogram of class {c}"] = p.name
    pictures["confusion matrix"] = plot_confusion(out / "confusion.png", figures["confusion"]).name

    rng = np.random.default_rng(seed)
    sample, worst_pairs = [], []
    for k, c in enumerate(result.classes):
        own = np.flatnonzero(truth == c)
        sample += [(int(i), c) for i in rng.choice(own, size=min(per_class_examples, len(own)), replace=False)]
        worst_pairs += [(int(i), c, float(result.test_z[i, k])) for i in own]
    worst_pairs = sorted(worst_pairs, key=lambda t: -t[2])[:worst]
    # pictures of reconstructions for the classes whose kind reconstructs (a one-class SVM does not)
    rebuilds = {c for c, d in router.detectors.items() if d.reconstructs}
    sample = [(i, c) for i, c in sample if c in rebuilds]
    drawn = [(i, c, z) for i, c, z in worst_pairs if c in rebuilds]
    if sample:
        titles = [_short(result.names[i]) for i, _ in sample]
        pictures["sample: originals and reconstructions by their own class"] = reconstruction_montage(
            out / "montage_sample.png", router, images, sample, titles).name
    if drawn:
        label = st.METHOD_LABELS[result.method]
        titles = [f"{_short(result.names[i])}, class {c}: {label} {z:.1f}" for i, c, z in drawn]
        pictures[f"worst: own-class images with the highest {label} (of the error)"] = reconstruction_montage(
            out / "montage_worst.png", router, images, [(i, c) for i, c, _ in drawn], titles).name
    histories = {c: d.curves() for c, d in router.detectors.items() if d.curves()}
    if histories:
        labels = {router.detectors[c].loss_label for c in histories}
        label = labels.pop() if len(labels) == 1 else "training loss (each kind's)"
        pictures["training loss"] = plot_losses(out / "loss.png", histories, label).name

    figures["pictures"] = pictures
    figures["training_warnings"] = training_warnings(router.detectors)
    figures["unfinished_trainings"] = unfinished_trainings(router.detectors)
    figures["worst"] = [{"image": result.names[i], "class": c, "z": z} for i, c, z in worst_pairs]
    (out / "report.json").write_text(json.dumps(figures, indent=2))
    (out / "report.html").write_text(_html(figures, out))
    figures["report"] = str(out)
    return figures


def _html(f: dict, out: Path) -> str:
    """One page with every picture inlined, so it can be mailed or archived alone."""
    def num(v) -> str:
        return "" if v is None else (f"{v:.4g}" if isinstance(v, float) else html.escape(str(v)))

    head = [("flags (a class says \"not this class\" when)",
             describe_rule(f["method"], f["threshold"], f["margin"], f["complexity_threshold"], f.get("compare", "raw"))),
            ("argmin accuracy", f["accuracy"]), ("accuracy counting unknown as wrong", f["accuracy_with_unknown"]),
            ("called unknown: images of the bank's classes (should be low)",
             f"{f['unknown_rate']:.2%} ({f['n_unknown']} of {f['n_known']})")]
    if f["n_foreign"]:
        head.append((f"called unknown: foreign images, of classes outside the bank "
                     f"({', '.join(f.get('foreign_classes', []))}; should be high)",
                     f"{f['foreign_unknown_rate']:.2%} ({f['n_foreign_unknown']} of {f['n_foreign']})"))
    else:
        head.append(("called unknown: foreign images", "none given (a sub-folder of images of no class in the bank "
                                                        "measures it)"))
    head += [("mean AUROC of the flag's score", f["auroc_mean"]),
             ("mean AUROC of the raw error", f["auroc_error_mean"]),
             ("false reject (mean over classes)", f["false_reject"]),
             ("false accept (mean over classes)", f["false_accept"]),
             ("images", f["n_images"])]
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td{' class=rule' if i == 0 else ''}>{num(v)}</td></tr>"
                   for i, (k, v) in enumerate(head))
    warned = f.get("training_warnings") or {}
    warnings = "" if not warned else (
        "<h2>Training warnings (from the classes' cards)</h2><ul class='warnings'>" + "".join(
            f"<li><b>class {html.escape(c)}</b>: {html.escape(w)}</li>" for c, ws in warned.items() for w in ws)
        + "</ul>")
    keys = ["n_own", "n_other", "error_mean_own", "error_mean_other", "auroc", "auroc_error", "false_reject",
            "false_accept", "welch_t"]
    per = "".join(
        "<tr><th>" + html.escape(c) + "</th>" + "".join(f"<td>{num(v[k])}</td>" for k in keys) + "</tr>"
        for c, v in f["per_class"].items()
    )
    imgs = "".join(
        f"<figure><img alt='{html.escape(t)}' src='data:image/png;base64,"
        f"{base64.b64encode((out / name).read_bytes()).decode()}'><figcaption>{html.escape(t)}</figcaption></figure>"
        for t, name in f["pictures"].items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bank evaluation</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}figure{{display:inline-block;margin:8px}}
img{{max-width:100%}}.warnings{{color:#a40}}td.rule{{text-align:left}}</style></head><body>
<h1>bank evaluation</h1>
<table>{rows}</table>
{warnings}
<h2>Per class</h2>
<table><tr><th>class</th>{''.join(f'<th>{k}</th>' for k in keys)}</tr>{per}</table>
<h2>Pictures</h2>{imgs}
</body></html>
"""
