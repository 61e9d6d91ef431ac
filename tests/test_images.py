"""Decoding every common file kind and mode, and bringing images to a spec."""

import contextlib
import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs
from PIL import Image

from bank.io.decoding import read_image
from bank.io.images import ImageError, InputSpec, infer_spec, parse_size, to_spec, validate_array


def _save(tmp_path, name, im, **kw):
    p = tmp_path / name
    im.save(p, **kw)
    return p


@pytest.mark.parametrize(
    "mode, fmt, channels",
    [
        ("L", "PNG", 1),
        ("LA", "PNG", 1),
        ("RGB", "JPEG", 3),
        ("RGBA", "PNG", 3),
        ("P", "GIF", 3),
        ("1", "BMP", 1),
        ("I;16", "PNG", 1),
        ("CMYK", "JPEG", 3),
        ("RGB", "TIFF", 3),
        ("F", "TIFF", 1),
    ],
)
def test_every_mode_decodes_to_unit_floats(tmp_path, mode, fmt, channels):
    im = Image.new(mode, (13, 7))
    p = _save(tmp_path, f"x.{fmt.lower()}", im, format=fmt)
    arr = read_image(p)
    assert arr.shape == (7, 13, channels)
    assert arr.dtype == np.float32
    assert 0.0 <= arr.min() <= arr.max() <= 1.0


def test_16_bit_png_keeps_its_full_range(tmp_path):
    a = np.array([[0, 32768, 65535]], dtype=np.uint16)
    p = _save(tmp_path, "deep.png", Image.fromarray(a))
    np.testing.assert_allclose(read_image(p)[0, :, 0], [0.0, 32768 / 65535, 1.0], rtol=1e-6)


def test_transparency_is_composited_over_black(tmp_path):
    im = Image.new("RGBA", (2, 1), (255, 255, 255, 0))
    im.putpixel((1, 0), (255, 255, 255, 255))
    arr = read_image(_save(tmp_path, "a.png", im))
    np.testing.assert_allclose(arr[0, :, 0], [0.0, 1.0])


def test_exif_orientation_is_honoured(tmp_path):
    im = Image.new("L", (30, 10))  # wide
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: shown tall
    p = _save(tmp_path, "rot.jpg", im, exif=exif)
    assert read_image(p).shape[:2] == (30, 10)


def test_animated_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("L", (4, 4), 0), Image.new("L", (4, 4), 255)]
    p = tmp_path / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:])
    assert read_image(p).max() == 0.0


@pytest.mark.parametrize(
    "content, name, reason",
    [
        (b"", "empty.png", "empty file"),
        (b"this is not an image", "text.png", "not an image"),
        (None, "missing.png", "no such file"),
    ],
)
def test_bad_files_give_an_error_naming_the_file(tmp_path, content, name, reason):
    p = tmp_path / name
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(ImageError, match=reason) as e:
        read_image(p)
    assert e.value.source == str(p)


def test_truncated_image_is_a_clear_error(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    p = tmp_path / "cut.jpg"
    p.write_bytes(buf.getvalue()[:300])
    with pytest.raises(ImageError, match="cut.jpg"):
        read_image(p)


def test_png_named_jpg_still_reads(tmp_path):
    p = tmp_path / "really_png.jpg"
    Image.new("L", (5, 5), 128).save(p, format="PNG")
    assert read_image(p).shape == (5, 5, 1)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    p = _save(tmp_path, "big.png", Image.new("L", (100, 100)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 10,000 px > 2x the limit
    with pytest.raises(ImageError, match="decompression bomb"):
        read_image(p)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size and holds no pixels: what a bomb looks like to the opener."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [10_000, 60_000])  # past Pillow's limit, and past twice it
def test_huge_claimed_dimensions_are_refused_without_decoding(tmp_path, side):
    p = tmp_path / "huge.png"
    p.write_bytes(_png_header_only(side, side))
    with pytest.warns(Image.DecompressionBombWarning) if side == 10_000 else contextlib.nullcontext():
        with pytest.raises(ImageError, match="decompression bomb") as e:
            read_image(p)
    assert e.value.source == str(p)


def test_to_spec_converts_colour_by_luminosity_and_resizes():
    rgb = np.zeros((1, 4, 6, 3), dtype=np.float32)
    rgb[..., 1] = 1.0  # pure green
    out = to_spec(rgb, InputSpec(4, 6, "gray"))
    np.testing.assert_allclose(out, 0.587, rtol=1e-5)
    out = to_spec([np.ones((31, 17, 1), np.float32), np.zeros((3, 3, 3), np.float32)], InputSpec(8, 8, "rgb"))
    assert out.shape == (2, 8, 8, 3)
    np.testing.assert_allclose(out[0], 1.0, atol=1e-5)
    np.testing.assert_allclose(out[1], 0.0, atol=1e-6)


def test_tiny_1x1_image_resizes(tmp_path):
    p = _save(tmp_path, "dot.png", Image.new("L", (1, 1), 255))
    assert to_spec([read_image(p)], InputSpec(28, 28)).min() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "arr, match",
    [
        (np.zeros((0, 8, 8)), "non-empty"),
        (np.zeros((8, 8)), "shape"),
        (np.zeros((2, 8, 8, 2)), "channels"),
        (np.full((1, 4, 4), np.nan, dtype=np.float32), "NaN"),
        (np.full((1, 4, 4), -np.inf), "infinity"),
        (np.zeros((1, 4, 4), dtype=np.complex64), "dtype"),
        (np.array([["a"]]), "shape"),
        (np.full((1, 4, 4), 2.0), r"\[0, 1\]"),
        (np.zeros((1, 4, 4), dtype=np.int64), "dtype"),
        (np.zeros((1, 4, 4), dtype=object), "dtype"),
    ],
)
def test_bad_arrays_are_refused_with_what_was_expected(arr, match):
    with pytest.raises(ImageError, match=match):
        validate_array(arr)


def test_arrays_of_each_accepted_dtype_scale_to_unit():
    assert validate_array(np.full((1, 2, 2), 255, np.uint8)).max() == 1.0
    assert validate_array(np.full((1, 2, 2), 65535, np.uint16)).max() == 1.0
    assert validate_array(np.ones((1, 2, 2), bool)).max() == 1.0
    assert validate_array(np.full((1, 2, 2, 4), 0.5)).max() == pytest.approx(0.25)  # RGBA over black


def test_infer_spec_and_parse_size():
    assert infer_spec([np.zeros((28, 28, 1))] * 2) == InputSpec(28, 28, "gray")
    assert infer_spec([np.zeros((28, 28, 1)), np.zeros((30, 20, 3))]) == InputSpec(64, 64, "gray")
    colour = np.zeros((10, 10, 3))
    colour[..., 0] = 1
    assert infer_spec([colour]).color == "rgb"
    assert parse_size("28x32") == (28, 32) and parse_size("64") == (64, 64)
    with pytest.raises(ValueError, match="HxW"):
        parse_size("big")


@settings(max_examples=40, deadline=None)
@given(
    w=hs.integers(1, 40),
    h=hs.integers(1, 40),
    mode=hs.sampled_from(["L", "LA", "RGB", "RGBA", "P", "I;16", "1", "CMYK"]),
    fmt=hs.sampled_from(["PNG", "TIFF", "BMP", "JPEG", "GIF"]),
    seed=hs.integers(0, 2**16),
)
def test_any_image_pillow_writes_loads_in_range(tmp_path_factory, w, h, mode, fmt, seed):
    im = Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w), dtype=np.uint8)).convert(mode)
    buf = io.BytesIO()
    try:
        im.save(buf, format=fmt)
    except (OSError, ValueError, KeyError):
        return  # this format cannot store this mode
    p = tmp_path_factory.mktemp("h") / f"x.{fmt.lower()}"
    p.write_bytes(buf.getvalue())
    arr = read_image(p)
    assert arr.shape[:2] == (h, w) and arr.shape[2] in (1, 3)
    assert np.isfinite(arr).all() and 0.0 <= arr.min() and arr.max() <= 1.0
    assert to_spec([arr], InputSpec(8, 8, "rgb")).shape == (1, 8, 8, 3)


@settings(max_examples=150, deadline=None)
@given(data=hs.binary(max_size=300), cut=hs.integers(0, 400), flip=hs.integers(0, 400),
       fmt=hs.sampled_from(["PNG", "JPEG", "GIF", "BMP", "TIFF", None]))
def test_any_bytes_give_an_image_or_an_image_error(tmp_path_factory, data, cut, flip, fmt):
    """Random bytes, and real images cut short or with a byte flipped: never another exception."""
    if fmt is not None:
        buf = io.BytesIO()
        Image.new("RGB", (9, 6), (10, 200, 30)).save(buf, format=fmt)
        raw = bytearray(buf.getvalue())
        raw[flip % len(raw)] ^= 0xFF
        data = bytes(raw[: max(1, len(raw) - cut)])
    p = tmp_path_factory.mktemp("b") / "x.img"
    p.write_bytes(data)
    try:
        arr = read_image(p)
    except ImageError as e:
        assert e.source == str(p) and str(p) in str(e)
    else:
        assert arr.ndim == 3 and arr.shape[2] in (1, 3) and np.isfinite(arr).all()
        assert 0.0 <= arr.min() and arr.max() <= 1.0


def test_lists_of_any_accepted_images_scale_like_the_array():
    from bank.io.inputs import as_images, prepare

    batch = np.random.default_rng(0).integers(0, 256, (3, 8, 8), dtype=np.uint8)
    want = prepare(batch, InputSpec(8, 8))
    for as_list in (list(batch), [b[..., None] for b in batch], [Image.fromarray(b) for b in batch],
                    [b.astype(np.uint16) * 257 for b in batch], [np.repeat(b[..., None], 3, -1) for b in batch]):
        np.testing.assert_allclose(prepare(as_list, InputSpec(8, 8)), want, atol=1e-6)
    mixed = as_images([batch[0], np.zeros((5, 7, 3), np.float32), Image.new("RGBA", (4, 2))])
    assert [m.shape for m in mixed] == [(8, 8, 1), (5, 7, 3), (2, 4, 3)]
    with pytest.raises(ImageError, match=r"images\[1\].*\[0, 1\]"):
        as_images([batch[0], np.full((4, 4), 7.0)])
    with pytest.raises(ImageError, match=r"images\[0\].*shape \(2, 8, 8, 1\)"):
        as_images([np.zeros((2, 8, 8, 1))])
    with pytest.raises(ImageError, match="at least one image"):
        as_images([])
