"""What users pass to the Python API (issue 18, item 4): one photo as an array is one image, stacks are N,
paths and PIL images work alone and in lists, and anything else is refused naming what came."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bank import ImageError, InputSpec, Router
from bank.io.inputs import as_images, prepare


def photo(seed: int = 0, h: int = 24, w: int = 32) -> np.ndarray:
    """A small colour picture, uint8 (H, W, 3): smooth colour ramps and a block, as a decoded photo."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 255 // (h + w - 2)], axis=-1)
    top, left = rng.integers(0, h // 2), rng.integers(0, w // 2)
    img[top : top + h // 3, left : left + w // 3] = rng.integers(0, 256, 3)
    return img.astype(np.uint8)


def save(arr: np.ndarray, path: Path) -> Path:
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture(scope="module")
def router(bank_registry):
    return Router.from_registry(bank_registry)


@pytest.fixture(scope="module")
def detector(bank_registry):
    return bank_registry.load_detector("0")


# ---------------------------------------------------------------- the rule, without a model

def test_the_shape_rule():
    assert as_images(np.zeros((240, 320, 3), np.uint8)).shape == (1, 240, 320, 3)  # the issue's photo: one image
    assert as_images(np.zeros((240, 320, 4), np.uint8)).shape == (1, 240, 320, 3)  # RGBA: one, over black
    assert as_images(np.zeros((24, 32, 1), np.float32)).shape == (1, 24, 32, 1)  # read_image's gray: one
    assert as_images(np.zeros((24, 32), np.uint16)).shape == (1, 24, 32, 1)  # 2-D: one gray image
    assert as_images(np.zeros((5, 8, 8), bool)).shape == (5, 8, 8, 1)  # digits: a stack
    assert as_images(np.zeros((5, 8, 8, 3), np.uint8)).shape == (5, 8, 8, 3)
    assert as_images(np.zeros((3, 8, 4))).shape == (1, 3, 8, 3)  # last axis 4: channels, one RGBA image ...
    assert as_images(np.zeros((3, 8, 4))[..., None]).shape == (3, 8, 4, 1)  # ... a stack says so with its channel axis


def test_colour_array_path_and_pil_reach_any_spec_alike(tmp_path):
    arr = photo()
    p = save(arr, tmp_path / "p.png")
    for spec in (InputSpec(8, 8, "gray"), InputSpec(8, 8, "rgb"), InputSpec(30, 20, "rgb")):
        want = prepare(arr, spec)
        assert want.shape == (1, *spec.shape)
        for other in (p, str(p), [p], Image.open(p), [Image.open(p)], [arr], (arr,)):
            np.testing.assert_array_equal(prepare(other, spec), want)


def test_a_pil_image_is_read_as_its_file_exif_orientation_too(tmp_path):
    im = Image.fromarray(photo(3))
    exif = Image.Exif()
    exif[0x0112] = 6  # turned a quarter
    p = tmp_path / "turned.jpg"
    im.save(p, exif=exif, quality=95)
    spec = InputSpec(32, 24, "rgb")
    from_file = prepare(p, spec)
    np.testing.assert_array_equal(prepare(Image.open(p), spec), from_file)
    assert as_images(Image.open(p))[0].shape == (32, 24, 3)


# ---------------------------------------------------------------- through the router

def test_one_photo_as_an_array_gives_one_answer_like_its_file_and_pil_image(router, tmp_path):
    arr = photo()
    p = save(arr, tmp_path / "photo.png")
    res = router.score(arr)
    assert len(res.labels) == 1 and res.errors.shape == (1, len(router.classes))
    for other in (p, str(p), [p], Image.open(p), [Image.open(p)]):
        got = router.score(other)
        np.testing.assert_allclose(got.errors, res.errors, rtol=1e-6)
        assert got.labels == res.labels
    assert router.score(p).names == [str(p)]  # a path names its answer
    assert len(router.classify(arr)) == 1
    assert router.classify(arr) == router.classify(p) == router.classify(Image.open(p))
    rgba = np.concatenate([arr, np.full((*arr.shape[:2], 1), 255, np.uint8)], axis=-1)  # opaque RGBA: the same
    np.testing.assert_allclose(router.errors(rgba), res.errors, rtol=1e-6)
    for other in (arr / 255.0, arr.astype(np.uint16) * 257):  # float in [0, 1] and 16-bit: the same picture
        np.testing.assert_allclose(router.errors(other), res.errors, rtol=1e-5, atol=1e-7)


def test_the_issues_noise_file_in_a_list(router, tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (40, 40), dtype=np.uint8)
    p = save(noise, tmp_path / "noise.png")
    res = router.score([str(p)])
    assert res.names == [str(p)] and len(res.labels) == 1
    np.testing.assert_allclose(res.errors, router.errors(noise), rtol=1e-6)


def test_a_colour_stack_gives_one_answer_per_image(router):
    stack = np.stack([photo(s) for s in range(5)])  # (5, 24, 32, 3)
    res = router.score(stack)
    assert len(res.labels) == 5
    one_by_one = np.concatenate([router.errors(img) for img in stack])
    np.testing.assert_allclose(res.errors, one_by_one, rtol=1e-5)
    assert router.classify(stack) == res.labels


def test_digit_stacks_and_single_gray_images_work_as_before(router, digits):
    images, _ = digits
    batch = images[1400:1410]  # (10, 8, 8): ten gray images
    err = router.errors(batch)
    assert err.shape == (10, len(router.classes))
    np.testing.assert_allclose(router.errors(batch[..., None]), err, rtol=1e-6)
    np.testing.assert_allclose(router.errors(list(batch)), err, rtol=1e-6)
    one = router.score(batch[3])  # 2-D: one gray image
    assert len(one.labels) == 1
    np.testing.assert_allclose(one.errors[0], err[3], rtol=1e-5)
    np.testing.assert_allclose(router.errors(batch[3][..., None]), err[3:4], rtol=1e-5)  # (H, W, 1): one image
    assert router.classify(batch[3]) == router.classify(batch[3:4])


def test_a_stack_of_narrow_gray_images_says_so_with_a_channel_axis(router):
    narrow = np.random.default_rng(2).random((3, 8, 3), dtype=np.float32)
    assert len(router.classify(narrow)) == 1  # last axis 3: one colour image 3x8
    assert len(router.classify(narrow[..., None])) == 3  # (N, H, W, 1): three gray images 8x3
    assert len(router.classify(list(narrow))) == 3  # or a list of 2-D images


def test_paths_pil_images_and_arrays_mixed(router, digits, tmp_path):
    images, _ = digits
    arr, gray = photo(1), (images[1400] * 255).astype(np.uint8)
    p1, p2 = save(arr, tmp_path / "a.png"), save(gray, tmp_path / "b.png")
    mixed = [p1, Image.open(p2), arr, images[1400], str(p2), np.asarray(Image.open(p1))]
    res = router.score(mixed)
    assert len(res.labels) == 6
    assert res.names == [str(p1), str(p2), "#2", "#3", str(p2), "#5"]  # a PIL image opened from a file: its name
    alone = np.concatenate([router.errors(m) for m in mixed])
    np.testing.assert_allclose(res.errors, alone, rtol=1e-5)
    np.testing.assert_allclose(res.errors[0], res.errors[2], rtol=1e-6)  # a file and its pixels
    np.testing.assert_allclose(res.errors[1], res.errors[4], rtol=1e-6)
    np.testing.assert_allclose(res.errors[1], router.errors(gray)[0], rtol=1e-6)  # a gray file and its pixels
    np.testing.assert_allclose(router.errors(m for m in mixed), res.errors, rtol=1e-6)  # a generator, read once
    assert router.classify(mixed) == res.labels


@pytest.mark.parametrize(
    "images, match",
    [
        ([np.zeros((8, 8)), np.zeros((8, 8)), {"a": 1}],
         r"^images\[2\]: expected an image array, a PIL image or a file path, got dict$"),
        ([np.zeros((8, 8)), None], r"^images\[1\]: .*got NoneType"),
        ([np.zeros((8, 8)), 3], r"^images\[1\]: .*got int"),
        ([b"\x89PNG"], r"^images\[0\]: .*got bytes.*decode_image"),
        ({"a": np.zeros((8, 8))}, r"^images: .*got dict"),
        (b"\x89PNG", r"^images: .*got bytes"),
        (7, r"^images: .*got int"),
        ([], "at least one image"),
        ([np.zeros((8, 8)), np.zeros((2, 8, 8, 1))], r"^images\[1\]: .*shape \(2, 8, 8, 1\) and dtype float64"),
        ([np.zeros(8)], r"^images\[0\]: .*shape \(8,\)"),
        ([np.zeros((8, 8, 5))], r"^images\[0\]: .*channels.*\(8, 8, 5\)"),
        ([np.zeros((8, 8)), np.zeros((8, 8), np.int64)], r"^images\[1\]: .*dtype int64"),
        ([np.zeros((8, 8)), np.full((8, 8), 3.0)], r"^images\[1\]: .*\[0, 1\]"),
        (np.zeros((2, 2, 8, 8, 1)), r"^images: .*shape \(2, 2, 8, 8, 1\) and dtype float64"),
        (np.zeros((8, 8, 2)), r"^images: .*channels.*\(8, 8, 2\)"),
        (np.zeros((8, 8), np.int32), r"^images: .*dtype int32"),
        (np.array("photo.jpg"), r"^images: .*shape \(\)"),
    ],
)
def test_bad_inputs_are_named_with_what_came(router, images, match):
    with pytest.raises(ImageError, match=match):
        router.score(images)


def test_unreadable_paths_are_named(router, tmp_path):
    missing = tmp_path / "missing.png"
    with pytest.raises(ImageError, match="no such file") as e:
        router.score(missing)
    assert str(missing) in str(e.value) and e.value.source == str(missing)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ImageError) as e:
        router.classify([photo(), str(text)])
    assert str(e.value).startswith(f"images[1] ({text}): ") and "not an image" in str(e.value)
    with pytest.raises(ImageError, match="is a directory"):
        router.score([tmp_path])


# ---------------------------------------------------------------- through one detector

def test_detector_takes_the_same_inputs(detector, digits, tmp_path):
    images, _ = digits
    arr = photo()
    p = save(arr, tmp_path / "photo.png")
    one = detector.decision_function(arr)
    assert one.shape == (1,) and detector.predict(arr).shape == (1,)
    for other in (p, str(p), Image.open(p), [Image.open(p)]):
        np.testing.assert_allclose(detector.decision_function(other), one, rtol=1e-6)
        np.testing.assert_array_equal(detector.predict(other), detector.predict(arr))
    stack = np.stack([photo(s) for s in range(4)])
    assert detector.decision_function(stack).shape == (4,) and detector.predict(stack).shape == (4,)
    assert detector.decision_function(images[1400:1406]).shape == (6,)  # (N, 8, 8): a digit stack
    assert detector.predict(images[1400]).shape == (1,)  # 2-D: one gray image
    mixed = [p, Image.open(p), arr, images[1400]]
    np.testing.assert_allclose(detector.decision_function(mixed)[:3], np.repeat(one, 3), rtol=1e-6)
    assert detector.predict(mixed).shape == (4,)
    with pytest.raises(ImageError, match=r"^images\[1\]: .*got dict"):
        detector.predict([arr, {}])
    with pytest.raises(ImageError, match="no such file"):
        detector.decision_function(tmp_path / "missing.png")
