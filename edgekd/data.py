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
    if len(ds) == 0:
        raise DataError(f"{ds.source}: the data set is empty")
    if ds.x.dtype.kind == "f" and not np.all(np.isfinite(ds.x)):
        bad = int(np.sum(~np.isfinite(ds.x).reshape(len(ds), -1).all(axis=1)))
        raise DataError(f"{ds.source}: {bad} samples contain NaN or Inf", "clean or drop them before distilling")
    if labeled:
        if ds.y is None:
            raise DataError(f"{ds.source}: no labels (array 'y')", "add y, or pass the file as --unlabeled transfer data")
        if ds.y.shape[0] != ds.x.shape[0]:
            raise DataError(f"{ds.source}: x has {ds.x.shape[0]} samples but y has {ds.y.shape[0]}")


def _load_npz(path: str, labeled: bool) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as data:
            if "x" not in data.files:
                raise DataError(f"{path} has no array 'x' (found: {', '.join(data.files) or 'none'})", "save it with np.savez(path, x=..., y=...)")
            if labeled and "y" not in data.files:
                raise DataError(f"{path} has no array 'y' (found: {', '.join(data.files)})", "save labels as y, or pass the file as --unlabeled")
            x = data["x"]
            y = data["y"].astype(np.int64).reshape(-1) if "y" in data.files else None
            names = [str(v) for v in data["class_names"]] if "class_names" in data.files else []
    except (OSError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path} is not a readable .npz: {exc}")
    if x.ndim == 3:  # grayscale images without a channel axis, as MNIST ships
        x = x[..., None]
    return Dataset(x, y, names, path)


def _load_image_folder(path: str) -> Dataset:
    from PIL import Image

    classes = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))
    if not classes:
        raise DataError(f"{path} has no class sub-folders", "lay images out as DIR/<class>/<image>.png")
    xs, ys, shape = [], [], None
    for label, name in enumerate(classes):
        folder = os.path.join(path, name)
        for fname in sorted(os.listdir(folder)):
            if not fname.lower().endswith(IMAGE_SUFFIXES):
                continue
            try:
                with Image.open(os.path.join(folder, fname)) as img:
                    arr = np.asarray(img.convert("L" if img.mode in ("L", "1") else "RGB"))
            except OSError as exc:
                raise DataError(f"cannot read image {os.path.join(folder, fname)}: {exc}")
            if arr.ndim == 2:
                arr = arr[..., None]
            if shape is None:
                shape = arr.shape
            elif arr.shape != shape:
                raise DataError(f"image {os.path.join(name, fname)} is {arr.shape}, others are {shape}", "resize all images to one size")
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
    """The affine map raw -> [0, 1] the student is trained with: integer images /255, else /max."""
    from edgekd_runtime import Preprocessing

    if ds.x.dtype == np.uint8:
        return Preprocessing(scale=1.0 / 255.0, offset=0.0)
    lo, hi = float(np.min(ds.x)), float(np.max(ds.x))
    if hi <= lo:
        return Preprocessing(scale=1.0, offset=-lo)
    return Preprocessing(scale=1.0 / (hi - lo), offset=-lo / (hi - lo))
