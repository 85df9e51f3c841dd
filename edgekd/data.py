"""Loading data sets: `.npz` (x, y), image folders (one sub-folder per class), scikit-learn's digits.

Everything comes back as a :class:`Dataset` of raw arrays (images NHWC, labels int64); the
affine preprocessing that maps raw values into the model's range is derived here too, because
it travels in the bundle and the device applies it.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from .errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclass
class Dataset:
    x: np.ndarray
    y: Optional[np.ndarray]
    class_names: List[str] = field(default_factory=list)
    source: str = ""

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def input_shape(self):
        return tuple(int(v) for v in self.x.shape[1:])

    @property
    def num_classes(self) -> int:
        if self.class_names:
            return len(self.class_names)
        return int(self.y.max()) + 1 if self.y is not None and len(self.y) else 0

    def fingerprint(self) -> str:
        """sha256 over the raw bytes, shape and dtype: the soft-label cache key's data half."""
        digest = hashlib.sha256()
        digest.update(str((self.x.shape, str(self.x.dtype))).encode())
        digest.update(np.ascontiguousarray(self.x).tobytes())
        return digest.hexdigest()

    def subset(self, index) -> "Dataset":
        return Dataset(self.x[index], None if self.y is None else self.y[index], list(self.class_names), self.source)


def load_dataset(path: str, labeled: bool = True) -> Dataset:
    """Load ``path``: an ``.npz`` with ``x`` (and ``y``), an image folder, or ``digits`` (scikit-learn).

    >>> ds = load_dataset("digits")
    >>> ds.x.shape[1:], ds.num_classes
    ((8, 8, 1), 10)
    """
    if path in ("digits", "sklearn:digits"):
        return load_digits()
    if not os.path.exists(path):
        raise DataError(f"data not found: {path}", "give an .npz with arrays x and y, or an image folder with one sub-folder per class")
    if os.path.isdir(path):
        ds = _load_image_folder(path)
    elif path.endswith(".npz"):
        ds = _load_npz(path, labeled)
    else:
        raise DataError(f"unsupported data file: {path}", "use an .npz with arrays x and y, or an image folder")
    validate(ds, labeled)
    return ds


def validate(ds: Dataset, labeled: bool = True) -> None:
    """Refuse, with the fix named, data that would otherwise fail deep inside training or train on nonsense."""
    if ds.x.dtype.kind not in "fiu":
        raise DataError(f"{ds.source}: x holds {ds.x.dtype} values, not numbers", "save x as an integer or float array")
    if ds.x.ndim < 2:
        raise DataError(f"{ds.source}: x has shape {ds.x.shape}, without a sample axis and a feature axis", "save x as (N, H, W[, C]) images or (N, F) rows")
    if len(ds) == 0:
        raise DataError(f"{ds.source}: the data set is empty")
    if 0 in ds.x.shape[1:]:
        raise DataError(f"{ds.source}: x has shape {ds.x.shape}: each sample is empty")
    if ds.x.dtype.kind == "f" and not np.all(np.isfinite(ds.x)):
        bad = int(np.sum(~np.isfinite(ds.x).reshape(len(ds), -1).all(axis=1)))
        raise DataError(f"{ds.source}: {bad} samples contain NaN or Inf", "clean or drop them before distilling")
    if labeled:
        if ds.y is None:
            raise DataError(f"{ds.source}: no labels (array 'y')", "add y, or pass the file as --unlabeled transfer data")
        if ds.y.shape[0] != ds.x.shape[0]:
            raise DataError(f"{ds.source}: x has {ds.x.shape[0]} samples but y has {ds.y.shape[0]}")
    if ds.y is not None and len(ds.y) and ds.class_names and int(ds.y.max()) >= len(ds.class_names):
        raise DataError(
            f"{ds.source}: label {int(ds.y.max())} has no name: class_names lists {len(ds.class_names)} classes",
            "give one class_names entry per class, in label order, or drop class_names",
        )


# Labels are class indices; a value past this is a corrupt or mistaken array, not a class count.
MAX_LABEL = 1 << 31


def _labels(y: np.ndarray, path: str) -> np.ndarray:
    """y as int64 class indices 0..C-1, or a DataError saying what y holds instead."""
    if y.ndim == 2 and y.shape[1] > 1:
        raise DataError(f"{path}: y has shape {y.shape}, like one-hot rows", "save class indices instead: y.argmax(axis=1)")
    y = y.reshape(-1)
    if y.dtype.kind not in "iuf" or (y.dtype.kind == "f" and not np.all(np.isfinite(y))):
        raise DataError(f"{path}: y holds {y.dtype} values, not class indices", "save y as integers 0..C-1")
    if y.dtype.kind == "f" and not np.all(y == np.round(y)):
        raise DataError(f"{path}: y holds fractional values, not class indices", "save y as integers 0..C-1 (soft labels are not read)")
    if len(y) and (y.min() < 0 or y.max() >= MAX_LABEL):
        raise DataError(f"{path}: y holds labels from {y.min()} to {y.max()}, not class indices 0..C-1", "number the classes from 0")
    return y.astype(np.int64)


def _class_names(names: np.ndarray, path: str) -> List[str]:
    if names.ndim != 1 or names.dtype.kind not in "USiu":
        raise DataError(f"{path}: class_names is a {names.dtype} array of shape {names.shape}", "save class_names as a 1-D array of strings, one per class")
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in names.tolist()]


def _load_npz(path: str, labeled: bool) -> Dataset:
    try:
        data = np.load(path, allow_pickle=False)
        if not hasattr(data, "files"):
            raise DataError(f"{path} holds a single array, not named arrays", "save it with np.savez(path, x=..., y=...)")
        with data:
            if "x" not in data.files:
                raise DataError(f"{path} has no array 'x' (found: {', '.join(data.files) or 'none'})", "save it with np.savez(path, x=..., y=...)")
            if labeled and "y" not in data.files:
                raise DataError(f"{path} has no array 'y' (found: {', '.join(data.files)})", "save labels as y, or pass the file as --unlabeled")
            x = data["x"]
            y = data["y"] if "y" in data.files else None
            names = data["class_names"] if "class_names" in data.files else None
    except DataError:
        raise
    except MemoryError:
        raise DataError(f"{path} holds an array too large for this machine's memory", "load a subset, or check that the file is not damaged")
    except Exception as exc:
        # np.load on a damaged file raises whatever its layers raise (zipfile's BadZipFile on a bad CRC, zlib.error,
        # EOFError, RuntimeError for an 'encrypted' member, numpy's ValueError on a bad header...): all mean the same.
        raise DataError(f"{path} is not a readable .npz ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'damaged'})",
                        "write it again with np.savez(path, x=..., y=...)")
    if y is not None:
        y = _labels(y, path)
    class_names = _class_names(names, path) if names is not None else []
    if x.ndim == 3:  # grayscale images without a channel axis, as MNIST ships
        x = x[..., None]
    return Dataset(x, y, class_names, path)


# Grayscale modes kept at their own depth (16-bit, 32-bit integer, float): converting them to 8 bits would clip.
_DEEP_GRAY = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def _read_image(full: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(full) as img:
            if img.mode in _DEEP_GRAY:
                arr = np.array(img)
            else:
                arr = np.asarray(img.convert("L" if img.mode in ("L", "1") else "RGB"))
    except Exception as exc:
        # Pillow's decoders raise many types on a damaged or hostile file (OSError, SyntaxError, ValueError,
        # EOFError, struct.error, DecompressionBombError...); each means this file cannot be used.
        detail = str(exc).splitlines()[0] if str(exc) else "damaged"
        raise DataError(f"cannot read image {full}: {type(exc).__name__}: {detail}", "replace or delete the file")
    return arr[..., None] if arr.ndim == 2 else arr


def _listdir(path: str) -> List[str]:
    try:
        return sorted(os.listdir(path))
    except OSError as exc:
        raise DataError(f"cannot list {path}: {exc.strerror or exc}")


def _load_image_folder(path: str) -> Dataset:
    classes = [d for d in _listdir(path) if os.path.isdir(os.path.join(path, d))]
    if not classes:
        raise DataError(f"{path} has no class sub-folders", "lay images out as DIR/<class>/<image>.png")
    xs, ys, shape, dtype = [], [], None, None
    for label, name in enumerate(classes):
        folder = os.path.join(path, name)
        for fname in _listdir(folder):
            full = os.path.join(folder, fname)
            if not fname.lower().endswith(IMAGE_SUFFIXES) or not os.path.isfile(full):
                continue
            arr = _read_image(full)
            if shape is None:
                shape, dtype = arr.shape, arr.dtype
            elif arr.shape != shape:
                raise DataError(f"image {os.path.join(name, fname)} is {arr.shape}, others are {shape}", "resize all images to one size")
            elif arr.dtype != dtype:
                raise DataError(f"image {os.path.join(name, fname)} has {arr.dtype} pixels, others {dtype}", "save all images with one bit depth")
            xs.append(arr)
            ys.append(label)
    if not xs:
        raise DataError(f"{path} has class folders but no images ({', '.join(IMAGE_SUFFIXES)})")
    return Dataset(np.stack(xs), np.asarray(ys, dtype=np.int64), classes, path)


def load_digits() -> Dataset:
    """scikit-learn's 8x8 digits (1,797 images, values 0..16), embedded in scikit-learn itself."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = bunch.images.astype(np.float32)[..., None]
    return Dataset(x, bunch.target.astype(np.int64), [str(v) for v in range(10)], "sklearn:digits")


def split(ds: Dataset, fraction: float, seed: int = 0):
    """Stratified split into (first, second) with ``fraction`` of samples in the second."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(ds))
    a, b = train_test_split(idx, test_size=fraction, random_state=seed, stratify=ds.y)
    return ds.subset(a), ds.subset(b)


def preprocessing_for(ds: Dataset):
    """``--preprocess auto``: the affine map raw -> [0, 1], uint8 images /255, other data by the min and max of ``ds``."""
    from edgekd_runtime import Preprocessing

    if ds.x.dtype == np.uint8:
        return Preprocessing(scale=1.0 / 255.0, offset=0.0)
    lo, hi = float(np.min(ds.x)), float(np.max(ds.x))
    if hi <= lo:
        return Preprocessing(scale=1.0, offset=-lo)
    return Preprocessing(scale=1.0 / (hi - lo), offset=-lo / (hi - lo))
