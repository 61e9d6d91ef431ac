"""README.md's tour, run as README prints it: the one ```bash block under "## Tour", line by line, in a fresh
folder holding the photos the tour names (synthetic: warm stripes for cats, cool blobs for dogs, green rings for
birds). Each command must exit 0 and say what the tour's comment says it does; renaming a command, dropping a flag
or a folder the tour names makes this fail. Also: every link between README.md and docs/ leads somewhere.

How the lines are run: split like a shell would (``shlex``, comments dropped), ``bank`` replaced by
``python -m bank`` (this interpreter, so the checkout under test), without ``$BANK_REGISTRY`` or ``$BANK_TOKEN``
from the environment (the tour names its own registry; ``./registry`` must stay untouched). Two lines cannot run
as printed, and are handled here explicitly:

- ``bank serve`` blocks until Ctrl-C: it is started in the background, asked ``/readyz`` until it answers, and
  stopped with SIGINT (Ctrl-C) after the lines that follow it ran. It is given a free ``--port`` (8000, the
  default the tour relies on, may be taken on a test machine), and ``127.0.0.1:8000`` in the lines after it
  becomes that port;
- ``curl`` (the tour's "from another terminal") runs as printed once the server is ready.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TIMEOUT = 600  # seconds a command may take: training is the slow one (tens of seconds on 2 cores)

#: The folders and files the tour names, and the family of synthetic photos each holds.
PHOTOS = {"photos/cat": ("stripes", 24), "photos/dog": ("blobs", 24), "birds": ("rings", 12)}
NEW = {"new/kitten.jpg": ("stripes", "cat"), "new/puppy.jpg": ("blobs", "dog")}


def tour_lines(text: str) -> list[list[str]]:
    """The commands of the one ```bash block under '## Tour', each as argv (blank and comment lines left out)."""
    section = re.search(r"^## Tour\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, "README.md has no '## Tour' section"
    blocks = re.findall(r"^```bash\n(.*?)^```", section.group(1), re.M | re.S)
    assert len(blocks) == 1, f"the tour should hold one ```bash block, it holds {len(blocks)}"
    lines = [argv for line in blocks[0].splitlines() if (argv := shlex.split(line, comments=True))]
    assert lines, "the tour's bash block is empty"
    return lines


def draw(family: str, rng: np.random.Generator) -> Image.Image:
    """A small colour "photo" of ``family`` (a random size of 48 to 96 pixels a side, with noise)."""
    w, h = (int(v) for v in rng.integers(48, 97, size=2))
    if family == "stripes":  # warm stripes at a random angle
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        angle, freq = rng.uniform(0, np.pi), rng.uniform(0.15, 0.35)
        wave = 0.5 + 0.5 * np.sin(freq * (xx * np.cos(angle) + yy * np.sin(angle)) + rng.uniform(0, 2 * np.pi))
        tint = np.array([rng.uniform(0.8, 1.0), rng.uniform(0.3, 0.6), rng.uniform(0.0, 0.2)])
        arr = (0.15 + 0.85 * wave[..., None]) * tint * 255
    else:  # cool ellipses on a flat ground, or green rings on white
        ground = (255, 255, 255) if family == "rings" else (20, int(rng.integers(80, 200)), 220)
        im = Image.new("RGB", (w, h), ground)
        pen = ImageDraw.Draw(im)
        for _ in range(int(rng.integers(2, 4))):
            x0, y0 = rng.uniform(0, 0.5) * w, rng.uniform(0, 0.5) * h
            box = [x0, y0, x0 + rng.uniform(0.3, 0.5) * w, y0 + rng.uniform(0.3, 0.5) * h]
            if family == "rings":
                pen.ellipse(box, outline=(0, int(rng.integers(120, 200)), 40), width=4)
            else:
                pen.ellipse(box, fill=(0, int(rng.integers(100, 256)), int(rng.integers(150, 256))))
        arr = np.asarray(im, np.float32)
    arr = arr + rng.normal(0, 6, size=arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def make_photos(where: Path) -> None:
    rng = np.random.default_rng(0)
    for folder, (family, n) in PHOTOS.items():
        (where / folder).mkdir(parents=True)
        for i in range(n):
            draw(family, rng).save(where / folder / f"{i:03d}.jpg", quality=90)
    for name, (family, _) in NEW.items():
        (where / name).parent.mkdir(exist_ok=True)
        draw(family, rng).save(where / name, quality=90)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(argv: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    if argv[0] == "curl" and shutil.which("curl") is None:
        pytest.skip("the tour's curl line needs curl, which is not installed here")
    out = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert out.returncode == 0, f"{shlex.join(argv)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
    return out


def rows(stdout: str) -> list[list[str]]:
    """A command's table, as the cells of each line."""
    return [line.split() for line in stdout.splitlines() if line.strip()]


def check(sub: list[str], out: subprocess.CompletedProcess, cwd: Path, registry: str) -> None:
    """That a bank command's output says what the tour says it does."""
    cmd, std = sub[0], out.stdout
    classes = sorted(p.name for p in (cwd / registry).iterdir() if not p.name.startswith("."))
    if cmd == "train-all":  # a class per sub-folder of photos/
        assert classes == ["cat", "dog"] and "2 of 2 classes registered" in std, std
        assert "kind auto: pretrained" in out.stderr, out.stderr  # photos get the pretrained kind
    elif cmd == "train":  # one class more: the others keep their version
        assert f"registered class {sub[1]!r} version 1 (active)" in std, std
        assert all((cwd / registry / c / "ACTIVE").read_text().strip() == "1" for c in classes), classes
    elif cmd == "list":
        listed = [r[0] for r in rows(std)[1:]]
        assert set(classes) <= set(listed), std
    elif cmd in ("classify", "score"):  # per image: cat, dog or unknown; score: every class's figures
        for name, (_, truth) in NEW.items():
            mine = [r for r in rows(std) if r[0].endswith(name)]
            assert mine, f"{name} is not in the output of bank {cmd}:\n{std}"
            if cmd == "classify":
                label, nearest = mine[0][1], mine[0][2]
                assert label in [*classes, "unknown"] and nearest == truth, mine[0]
            else:
                assert {r[1] for r in mine} >= set(classes), mine
    elif cmd == "outliers":  # the class's images past a quantile of its held-out errors, worst first
        n = len(list((cwd / sub[2]).iterdir()))
        assert f"of {n} images is past" in std or f"of {n} images are past" in std, std
        assert f"class {sub[1]!r}" in std, std
    else:
        raise AssertionError(f"the tour runs 'bank {cmd}', which this test does not know how to check: teach it")


def wait_ready(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"bank serve exited {proc.returncode}:\n{proc.communicate()[1]}"
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise AssertionError("bank serve did not get ready in 120 s")


def test_the_tour_runs_as_printed(tmp_path):
    pytest.importorskip("fastapi", reason="bank serve needs the serve extra (part of the test extra)")
    pytest.importorskip("uvicorn", reason="bank serve needs the serve extra (part of the test extra)")
    lines = tour_lines(README.read_text(encoding="utf-8"))
    make_photos(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("BANK_REGISTRY", "BANK_TOKEN")}
    registries = {argv[argv.index("--registry") + 1] for argv in lines if "--registry" in argv}
    assert len(registries) == 1, f"every bank command of the tour should name one registry: {registries}"
    registry = registries.pop()
    assert registry != "registry", "the tour's registry must not be the demo's ./registry"
    assert all("--registry" in argv for argv in lines if argv[0] == "bank"), "a tour command without --registry"
    ran: list[str] = []
    server, port = None, free_port()
    try:
        for argv in lines:
            started = time.monotonic()
            if argv[0] == "bank":
                sub = argv[1:]
                command = [sys.executable, "-m", "bank", *sub]
                if sub[0] == "serve":
                    assert server is None, "the tour starts bank serve twice"
                    server = subprocess.Popen([*command, "--port", str(port)], cwd=tmp_path, env=env,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                    wait_ready(f"http://127.0.0.1:{port}", server)
                else:
                    check(sub, run(command, tmp_path, env), tmp_path, registry)
            elif argv[0] == "curl":
                assert server is not None, "the tour's curl line comes before bank serve"
                argv = [a.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for a in argv]
                doc = json.loads(run(argv, tmp_path, env).stdout)  # the JSON of bank classify
                sent = [a.split("@", 1)[1] for a in argv if a.startswith("files=@")]
                assert [Path(r["image"]).name for r in doc["results"]] == [Path(s).name for s in sent], doc
                for r, s in zip(doc["results"], sent):
                    assert r["nearest"] == NEW[s][1] and (r["label"] or "unknown") in [*doc["classes"], "unknown"]
            else:
                raise AssertionError(f"the tour runs {argv[0]!r}: this test only knows bank and curl")
            ran.append(f"{time.monotonic() - started:5.1f} s  {shlex.join(argv)}")
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGINT)  # Ctrl-C, as the tour says
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(10)
        print("\n".join(ran))
    assert server is not None, "the tour serves nothing: it should end with bank serve"
    assert server.returncode == 0, f"bank serve, stopped with Ctrl-C, exited {server.returncode}"
    assert {a[1] for a in lines if a[0] == "bank"} >= {"train-all", "classify", "score", "outliers", "serve"}
    assert not (tmp_path / "registry").exists(), "the tour wrote into ./registry, the demo's"


def links(path: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)  # not inside code
    return re.findall(r"\]\(([^)\s]+)\)", text)


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings."""
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)
    heads = re.findall(r"^#+ (.+)$", text, re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


@pytest.mark.parametrize("doc", [README, *sorted((ROOT / "docs").glob("*.md"))], ids=lambda p: p.name)
def test_every_link_of_the_docs_leads_somewhere(doc):
    for link in links(doc):
        if re.match(r"[a-z]+:", link):  # http(s), mailto: not followed
            continue
        target, _, anchor = link.partition("#")
        path = (doc.parent / target).resolve() if target else doc
        assert path.exists(), f"{doc.name}: the link {link} leads to no file"
        if anchor:
            assert anchor in anchors(path), f"{doc.name}: the link {link} leads to no heading of {path.name}"
