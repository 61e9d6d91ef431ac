"""Bounded decoding: no larger than needed, refused past the pixel limit from the header, a shared budget."""

from __future__ import annotations

import io
import struct
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from bank.io.data import load_images
from bank.io.decoding import Busy, ImageTooLarge, PixelBudget, decode, decode_image, read_image
from bank.io.images import ImageError, InputSpec, to_spec


def encoded(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size and holds (almost) no pixels: decoding it would fail as truncated."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    """A 1200x1600 RGB picture with smooth colour and some noise, uint8."""
    yy, xx = np.mgrid[0:1200, 0:1600] / 200.0
    rgb = np.stack([np.sin(xx) + np.cos(yy * 1.3), np.sin(xx * 0.7 + yy), np.cos(xx * 1.1 - yy * 0.5)], -1)
    rgb = (rgb - rgb.min()) / (rgb.max() - rgb.min()) * 220
    noise = np.random.default_rng(0).integers(0, 30, rgb.shape)
    return (rgb + noise).astype(np.uint8)


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "LA", "P", "I;16", "1"])
def test_a_reduced_decode_gives_the_picture_the_full_one_gives(picture, mode):
    alpha = np.linspace(0, 255, picture.shape[1]).astype(np.uint8)[None, :].repeat(picture.shape[0], 0)
    im = {"RGB": lambda: Image.fromarray(picture), "L": lambda: Image.fromarray(picture[..., 0]),
          "RGBA": lambda: Image.fromarray(np.dstack([picture, alpha])),
          "LA": lambda: Image.fromarray(np.dstack([picture, alpha])).convert("LA"),
          "P": lambda: Image.fromarray(picture).quantize(64),
          "I;16": lambda: Image.fromarray(picture[..., 0].astype(np.uint16) * 257),
          "1": lambda: Image.fromarray(picture[..., 0]).convert("1")}[mode]()
    data = encoded(im)
    for spec in (InputSpec(28, 28), InputSpec(32, 48, "rgb")):
        full = to_spec([decode_image(data)], spec)
        small = decode_image(data, fit=(spec.height, spec.width))
        assert max(small.shape[:2]) < 600  # reduced: the full one is 1200x1600
        got = to_spec([small], spec)
        assert np.abs(got - full).mean() < (0.01 if mode == "1" else 0.003), mode
        assert np.abs(got - full).max() < (0.1 if mode in ("1", "P") else 0.02), mode


def test_a_jpeg_is_decoded_at_the_scale_it_needs_and_counted_so(picture):
    data = encoded(Image.fromarray(picture), "JPEG", quality=95)  # 1.92 megapixels
    with pytest.raises(ImageTooLarge) as e:
        decode_image(data, "big.jpg", max_pixels=150_000)
    assert (e.value.pixels, e.value.limit) == (1200 * 1600, 150_000)
    got = decode(io.BytesIO(data), "big.jpg", fit=(28, 28), max_pixels=150_000)  # at 1/4: 300x400
    assert (got.height, got.width) == (1200, 1600) and got.pixels.shape[:2] == (300, 400)
    full = to_spec([decode_image(data)], InputSpec(28, 28))
    assert np.abs(to_spec([got.pixels], InputSpec(28, 28)) - full).mean() < 0.003


def test_an_image_over_the_limit_is_refused_from_its_header(tmp_path):
    p = tmp_path / "huge.png"
    p.write_bytes(png_header_only(6000, 5000))  # its pixels are not there: decoding would fail otherwise
    with pytest.raises(ImageTooLarge, match=r"huge.png: 6000x5000 is 30000000 pixels, more than the limit of "
                                            r"1000000 pixels per image") as e:
        read_image(p, max_pixels=1_000_000)
    assert (e.value.source, e.value.pixels, e.value.limit) == (str(p), 30_000_000, 1_000_000)
    with pytest.raises(ImageError, match="cannot decode"):
        read_image(p, max_pixels=40_000_000)  # under the limit it is decoded, and found truncated


def test_the_limit_comes_from_the_environment_and_is_checked(tmp_path, monkeypatch):
    p = tmp_path / "a.png"
    Image.new("L", (100, 100)).save(p)
    monkeypatch.setenv("BANK_MAX_PIXELS", "5000")
    with pytest.raises(ImageTooLarge):
        read_image(p)
    monkeypatch.setenv("BANK_MAX_PIXELS", "lots")
    with pytest.raises(ValueError, match=r"\$BANK_MAX_PIXELS: expected a whole number of pixels"):
        read_image(p)


def test_exif_orientation_is_applied_to_the_reduced_image(picture):
    exif = Image.Exif()
    exif[0x0112] = 6  # turned: the picture is 1600 high and 1200 wide
    data = encoded(Image.fromarray(picture), "JPEG", quality=95, exif=exif.tobytes())
    full = decode(io.BytesIO(data), "turned.jpg")
    small = decode(io.BytesIO(data), "turned.jpg", fit=(28, 28))
    assert full.pixels.shape[:2] == (1600, 1200) and (small.height, small.width) == (1600, 1200)
    assert small.pixels.shape[0] > small.pixels.shape[1]
    spec = InputSpec(28, 28)
    assert np.abs(to_spec([small.pixels], spec) - to_spec([full.pixels], spec)).mean() < 0.003


def test_the_budget_bounds_pixels_decoded_at_once_and_gives_up_at_a_deadline():
    budget = PixelBudget(100)
    with budget.hold(80):
        with pytest.raises(Busy):
            with budget.hold(50, deadline=time.monotonic() + 0.05):
                pass
        with budget.hold(20, deadline=time.monotonic()):  # fits beside: no wait
            assert budget.used == 100
    peak, lock = [0], threading.Lock()

    def work(n: int) -> None:
        with budget.hold(n):
            with lock:
                peak[0] = max(peak[0], budget.used)
            time.sleep(0.01)

    threads = [threading.Thread(target=work, args=(n,)) for n in (60, 60, 500, 30, 70)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert budget.used == 0 and peak[0] <= 100  # one larger than the budget ran alone


def test_a_folder_is_read_with_the_image_over_the_limit_named_and_the_rest_kept(tmp_path):
    for i in range(5):
        Image.new("L", (20, 20), 40 * i).save(tmp_path / f"ok{i}.png")
    Image.new("RGB", (3000, 2000), (9, 9, 9)).save(tmp_path / "big.png")
    loaded = load_images([tmp_path], fit=(8, 8), max_pixels=1_000_000)
    assert len(loaded.images) == 5 and [n for n, _ in loaded.skipped] == [str(tmp_path / "big.png")]
    assert "6000000 pixels, more than the limit of 1000000" in loaded.skipped[0][1]
