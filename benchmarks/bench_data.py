"""Where the benchmarks find their data sets: ``--data-dir`` > the ``EDGEKD_DATA`` environment variable > ``../shared/data``
beside the repository (the folder this project's machines provide).

    from bench_data import add_data_dir_argument, data_dir, MNIST
    add_data_dir_argument(parser)
    data = data_dir(args.data_dir, MNIST)          # exits 2 with one message when a file is missing

The chosen folder is put into ``EDGEKD_DATA`` so the processes a benchmark starts look in the same place. Named
``bench_data`` (not ``datasets``) so it never shadows the Hugging Face package of that name.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ENV = "EDGEKD_DATA"
DEFAULT = Path(__file__).resolve().parent.parent.parent / "shared" / "data"

MNIST = ("mnist_train.npz", "mnist_test.npz")
CIFAR10_ARCHIVE = ("cifar10_jpeg.npz", "prepare_cifar10.py")

# How to get each file, for the error message.
_HOW = {
    "mnist": "MNIST as mnist_train.npz / mnist_test.npz (official 60,000 / 10,000 split; arrays x uint8 (N, 28, 28), "
             "y int64), e.g. from tf.keras.datasets.mnist.load_data() saved with numpy.savez(path, x=x, y=y)",
    "cifar10": "CIFAR-10 as cifar10_jpeg.npz (the 60,000 images as JPEG files: arrays blob, offsets, y, split, names, "
               "class_names) with its decoder prepare_cifar10.py beside it; both are in this project's shared data folder, "
               "whose README.md describes them",
}


def add_data_dir_argument(parser) -> None:
    parser.add_argument("--data-dir", type=Path, default=None,
                        help=f"folder holding the data sets (default: ${ENV}, else {DEFAULT})")


def _how(name: str) -> str:
    return next((how for key, how in _HOW.items() if name.startswith(key)), "see benchmarks/README.md")


def data_dir(arg: str | Path | None = None, need: tuple[str, ...] | list[str] = ()) -> Path:
    """The data folder, checked to hold every file in ``need``; exits with status 2 and one message otherwise."""
    if arg:
        path, source = Path(arg), "--data-dir"
    elif os.environ.get(ENV):
        path, source = Path(os.environ[ENV]), f"${ENV}"
    else:
        path, source = DEFAULT, "the default"
    path = path.expanduser().resolve()
    missing = [name for name in need if not (path / name).is_file()]
    if missing or not path.is_dir():
        what = f"{missing[0]} not found in {path}" if path.is_dir() else f"data folder {path} does not exist"
        wanted = missing or list(need)
        print(f"error: {what} (folder from {source}). This benchmark needs {', '.join(wanted) or 'its data sets'} there: "
              f"pass --data-dir DIR or set {ENV}=DIR to the folder that holds them. "
              f"Data: {_how(wanted[0]) if wanted else 'see benchmarks/README.md'}.", file=sys.stderr)
        raise SystemExit(2)
    os.environ[ENV] = str(path)  # subprocesses started from here look in the same folder
    return path
