"""Under pressure: huge images, crowds of uploads, a full server, and errors that do not hide bugs."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from bank.cli import EXIT_BUG, main  # noqa: E402
from bank.answering.server import create_app  # noqa: E402


def png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def digit_png(digits, i: int = 1400) -> bytes:
    images, _ = digits
    return png(Image.fromarray((images[i] * 255).round().astype(np.uint8)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.fixture
def served(bank_registry):
    """Start ``bank serve`` in its own process with the given options; yield its base URL and pid."""
    procs = []

    def start(*options: str) -> tuple[str, int]:
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "bank", "serve", "--registry", str(bank_registry.root),
                                 "--port", str(port), *options], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    return url, proc.pid
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError("the server did not get ready in 60 s")

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(10)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's peak memory from /proc")
def test_a_crowd_of_small_uploads_of_huge_images_is_answered_within_bounded_memory(served, digits):
    flat = png(Image.new("RGB", (6000, 6000), (200, 100, 50)))  # 111 KB; 108 MB as 8-bit, 432 MB as float
    assert len(flat) < 200_000
    url, pid = served("--max-pixels", "40000000")
    before = peak_rss_mb(pid)

    def send(i: int) -> int:
        r = httpx.post(url + "/v1/classify", files=[("files", (f"flat{i}.png", flat, "image/png"))], timeout=120)
        assert r.status_code != 503 or r.headers["retry-after"] == "1"
        return r.status_code

    with ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(send, range(12)))
    assert set(codes) <= {200, 503} and codes.count(200) >= 1, codes
    grew = peak_rss_mb(pid) - before
    print(f"server: {before:.0f} MB before, peak grew by {grew:.0f} MB; answers {codes}")
    assert grew < 700, f"peak resident memory grew by {grew:.0f} MB for 12 x 6000x6000 images"  # about 12 x 600 before
    r = httpx.post(url + "/v1/classify", content=digit_png(digits), timeout=30)
    assert r.status_code == 200 and r.json()["results"][0]["nearest"] in ("0", "1", "7")


def test_an_image_over_the_pixel_limit_gets_413_naming_it_and_the_rest_are_answered(bank_registry, digits):
    from fastapi.testclient import TestClient

    big = png(Image.new("L", (3000, 2000), 9))
    with TestClient(create_app(bank_registry.root, max_pixels=1_000_000)) as c:
        r = c.post("/v1/classify", files=[("files", ("big.png", big, "image/png"))])
        assert r.status_code == 413
        doc = r.json()
        assert doc["image"] == "big.png" and doc["pixels"] == 6_000_000 and doc["limit_pixels"] == 1_000_000
        assert "big.png: 3000x2000 is 6000000 pixels, more than the limit of 1000000" in doc["error"]
        r = c.post("/v1/classify", files=[("files", ("big.png", big, "image/png")),
                                          ("files", ("d.png", digit_png(digits), "image/png"))])
        assert r.status_code == 200
        doc = r.json()
        assert [x["image"] for x in doc["results"]] == ["d.png"] and doc["skipped"][0]["image"] == "big.png"


def test_a_full_server_says_503_with_retry_after_and_recovers(bank_registry, digits):
    from fastapi.testclient import TestClient

    app = create_app(bank_registry.root, queue_seconds=0.2)
    with TestClient(app) as c:
        uploads = app.state.uploads
        uploads.used = uploads.total  # as if every byte of the budget were being read by others
        r = c.post("/v1/classify", content=digit_png(digits))
        assert r.status_code == 503 and r.headers["retry-after"] == "1" and "busy" in r.json()["error"]
        uploads.used = 0
        assert c.post("/v1/classify", content=digit_png(digits)).status_code == 200


def test_too_many_images_in_one_request_get_413(bank_registry, digits):
    from fastapi.testclient import TestClient

    with TestClient(create_app(bank_registry.root, max_images=3)) as c:
        files = [("files", (f"{i}.png", digit_png(digits, 1400 + i), "image/png")) for i in range(4)]
        r = c.post("/v1/score", files=files)
        assert r.status_code == 413 and "4 images, more than the limit of 3" in r.json()["error"]
        assert c.post("/v1/score", files=files[:3]).status_code == 200


def test_classify_names_the_file_over_the_limit_and_answers_the_rest(bank_registry, digits, tmp_path, capsys):
    (tmp_path / "d.png").write_bytes(digit_png(digits))
    Image.new("L", (3000, 2000), 9).save(tmp_path / "big.png")
    code = main(["classify", str(tmp_path), "--registry", str(bank_registry.root), "--max-pixels", "1e6", "--json"])
    out, err = capsys.readouterr()
    assert code == 0
    doc = json.loads(out)
    assert [r["image"] for r in doc["results"]] == [str(tmp_path / "d.png")]
    assert doc["skipped"][0]["image"] == str(tmp_path / "big.png") and "limit of 1000000" in err
    with pytest.raises(SystemExit):
        main(["classify", str(tmp_path), "--max-pixels", "0"])
    assert "--max-pixels: expected a whole number of pixels >= 1, got '0'" in capsys.readouterr().err


def test_a_bug_is_reported_as_one_and_shows_its_traceback_with_debug(bank_registry, tmp_path, capsys, monkeypatch):
    import bank.answering.router

    img = tmp_path / "d.png"
    Image.new("L", (8, 8), 50).save(img)

    def broken(self, *a, **k):
        raise TypeError("unsupported operand type(s) for +: 'NoneType' and 'int'")

    monkeypatch.setattr(bank.answering.router.Router, "score_files", broken)
    args = ["classify", str(img), "--registry", str(bank_registry.root)]
    assert main(args) == EXIT_BUG
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "bank classify: error: internal error, a bug in bank: TypeError: unsupported operand type(s) for +: "
        "'NoneType' and 'int' (run again with --debug, or BANK_DEBUG=1, to see the traceback)"]
    assert main(args + ["--debug"]) == EXIT_BUG
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "in broken" in err
    monkeypatch.setenv("BANK_DEBUG", "1")
    assert main(args + ["--json"]) == EXIT_BUG
    out, err = capsys.readouterr()
    assert "Traceback" in err and json.loads(out)["internal"] is True
    monkeypatch.delenv("BANK_DEBUG")
    monkeypatch.undo()
    (tmp_path / "bad.png").write_bytes(b"not a png")  # the user's mistake: a clear line, exit 1, no traceback
    assert main(["classify", str(tmp_path / "bad.png"), "--registry", str(bank_registry.root)]) == 1
    err = capsys.readouterr().err
    assert "bad.png: not an image Pillow can read" in err and "Traceback" not in err and "internal" not in err


def test_the_library_raises_its_own_errors_for_bad_arguments():
    from bank.errors import BankError, InputError
    from bank.io.images import parse_size

    with pytest.raises(InputError, match="size: expected HxW"):
        parse_size("big")
    assert issubclass(InputError, ValueError) and issubclass(InputError, BankError)
    env = {**os.environ, "BANK_DEBUG": "0"}
    out = subprocess.run([sys.executable, "-m", "bank", "classify", "x.png", "--registry", "/nonexistent"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 1 and out.stderr.strip().splitlines()[-1].startswith("bank classify: error: no registry")
