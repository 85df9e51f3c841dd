"""Loading the three data forms users arrive with."""
import numpy as np
import pytest

from edgekd.data import load_dataset, preprocessing_for
from edgekd.errors import DataError


def test_image_folder_one_subfolder_per_class(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    ds = load_dataset(str(tmp_path))
    assert ds.x.shape == (6, 12, 10, 3) and ds.x.dtype == np.uint8
    assert ds.class_names == ["cat", "dog"] and list(ds.y) == [0, 0, 0, 1, 1, 1]
    assert preprocessing_for(ds).scale == pytest.approx(1 / 255)


def test_image_folder_with_mixed_sizes_is_refused(tmp_path):
    from PIL import Image

    for cls, size in (("a", (8, 8)), ("b", (9, 8))):
        (tmp_path / cls).mkdir()
        Image.fromarray(np.zeros(size, np.uint8)).save(tmp_path / cls / "0.png")
    with pytest.raises(DataError, match="resize"):
        load_dataset(str(tmp_path))


def test_npz_grayscale_gets_a_channel_axis(tmp_path):
    path = tmp_path / "mnist_like.npz"
    np.savez(path, x=np.zeros((5, 28, 28), np.uint8), y=np.arange(5))
    ds = load_dataset(str(path))
    assert ds.input_shape == (28, 28, 1) and ds.num_classes == 5


def test_empty_and_mismatched_sets_are_refused(tmp_path):
    empty = tmp_path / "empty.npz"
    np.savez(empty, x=np.zeros((0, 4), np.float32), y=np.zeros((0,), np.int64))
    with pytest.raises(DataError, match="empty"):
        load_dataset(str(empty))
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((4, 4), np.float32), y=np.zeros((3,), np.int64))
    with pytest.raises(DataError, match="4 samples but y has 3"):
        load_dataset(str(bad))


def test_digits_fingerprint_is_stable_and_content_sensitive():
    a = load_dataset("digits")
    b = load_dataset("digits")
    assert a.fingerprint() == b.fingerprint()
    b.x[0, 0, 0, 0] += 1
    assert a.fingerprint() != b.fingerprint()
