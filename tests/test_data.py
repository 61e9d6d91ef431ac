"""Files, folders, labelled trees and MNIST IDX files."""

import gzip
import struct

import numpy as np
import pytest
from PIL import Image

from bank.io.data import class_images, list_image_files, load_images, load_labelled, read_idx


def _idx_bytes(arr: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + b"".join(struct.pack(">I", s) for s in arr.shape) + arr.tobytes()


def _write_mnist(folder, n=12, gz=True):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 3).astype(np.uint8)
    for stem, arr in (("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels)):
        data = _idx_bytes(arr)
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)
    return images, labels


@pytest.mark.parametrize("gz", [True, False])
def test_idx_reads_gzipped_and_raw(tmp_path, gz):
    images, labels = _write_mnist(tmp_path, gz=gz)
    labelled = load_labelled(tmp_path)
    assert labelled.classes == ["0", "1", "2"]
    np.testing.assert_array_equal(labelled.arrays["1"], images[labels == 1])


def test_bad_idx_files_are_named(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x12\x34\x56\x78")
    with pytest.raises(ValueError, match="bad magic"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(_idx_bytes(np.zeros((4, 2, 2), np.uint8))[:-3])
    with pytest.raises(ValueError, match="short: IDX body"):
        read_idx(tmp_path / "short")


def test_folder_listing_skips_hidden_and_non_image_files(tmp_path):
    (tmp_path / "sub").mkdir()
    Image.new("L", (3, 3)).save(tmp_path / "b.png")
    Image.new("L", (3, 3)).save(tmp_path / "sub" / "a.JPG", format="JPEG")
    Image.new("L", (3, 3)).save(tmp_path / ".hidden.png")
    (tmp_path / "notes.txt").write_text("hello")
    files, missing = list_image_files([tmp_path, tmp_path / "nope.png"])
    assert [f.name for f in files] == ["b.png", "a.JPG"]
    assert missing == [(str(tmp_path / "nope.png"), "no such file or folder")]


def test_a_bad_file_in_a_folder_is_reported_and_the_rest_load(tmp_path):
    for i in range(5):
        Image.new("L", (4, 4), i * 40).save(tmp_path / f"{i}.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    (tmp_path / "empty.png").write_bytes(b"")
    loaded = load_images([tmp_path])
    assert len(loaded.images) == 5
    assert sorted(n.split("/")[-1] for n, _ in loaded.skipped) == ["broken.png", "empty.png"]
    assert all(reason for _, reason in loaded.skipped)


def test_class_images_accepts_idx_subfolder_or_plain_folder(tmp_path):
    images, labels = _write_mnist(tmp_path)
    assert class_images(tmp_path, "2").shape == ((labels == 2).sum(), 28, 28)
    with pytest.raises(ValueError, match="no images labelled 'cat'"):
        class_images(tmp_path, "cat")
    root = tmp_path / "photos"
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir()
    Image.new("RGB", (5, 5)).save(root / "cat" / "c.png")
    Image.new("RGB", (5, 5)).save(root / "dog" / "d.png")
    assert class_images(root, "cat").names == [str(root / "cat" / "c.png")]
    assert len(class_images(root / "dog", "anything").images) == 1
    assert load_labelled(root).classes == ["cat", "dog"]
