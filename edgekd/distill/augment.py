"""Random crops and flips: drawn afresh every step, or fixed in advance as K views per image.

Online, each step sees new crops, so the teacher has to run on every batch (1.5x the epoch time of training
without it, in benchmarks/augment_cost.py on 2 CPU cores). Fixed views follow FKD (Shen & Xing, 2021): the
teacher labels K crops of every image once, the crops are kept as offsets and a flip bit, and each epoch hands
every image one of its K views with that view's soft labels, so an augmented distillation epoch costs what a
scratch epoch costs.
"""
from __future__ import annotations

from dataclasses import dataclass
import numpy as np

KINDS = ("none", "crop", "crop-flip")


def pad_for(input_shape) -> int:
    """Crops shift by up to 1/8 of the side (4 pixels on 32x32), the usual CIFAR setting."""
    return max(1, int(input_shape[0]) // 8)


def apply(xb, params, pad: int):
    """Crop a batch (n, h, w, c) at ``params[:, 0:2]`` (row, column offsets within the reflect-padded image) and
    mirror it where ``params[:, 2]`` is 1."""
    import tensorflow as tf

    h, w = tf.shape(xb)[1], tf.shape(xb)[2]
    padded = tf.pad(xb, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    rows = params[:, 0:1] + tf.range(h)[None, :]
    cols = params[:, 1:2] + tf.range(w)[None, :]
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    out = tf.gather(out, cols, axis=2, batch_dims=1)
    return tf.where(tf.equal(params[:, 2], 1)[:, None, None, None], tf.reverse(out, axis=[2]), out)


def online(kind: str, input_shape):
    """A tf function that augments a batch with fresh random crops (and flips for crop-flip); None for none."""
    if kind == "none":
        return None
    import tensorflow as tf

    pad = pad_for(input_shape)

    def augment(xb):
        n = tf.shape(xb)[0]
        offsets = tf.random.uniform([n, 2], 0, 2 * pad + 1, dtype=tf.int32)
        flips = tf.cast(tf.random.uniform([n, 1]) < 0.5, tf.int32) if kind == "crop-flip" else tf.zeros([n, 1], tf.int32)
        return apply(xb, tf.concat([offsets, flips], axis=1), pad)

    return augment


@dataclass
class Views:
    """K fixed augmented views of N images: ``params`` (K, N, 3) int32 rows of (row offset, column offset, flip)."""

    kind: str
    params: np.ndarray
    pad: int
    seed: int

    @property
    def count(self) -> int:
        return int(self.params.shape[0])

    def images(self, x: np.ndarray, k: int, chunk: int = 4096) -> np.ndarray:
        """View ``k`` of every image in ``x``, through the same op the training pipeline uses."""
        import tensorflow as tf

        parts = [apply(tf.constant(x[i : i + chunk]), tf.constant(self.params[k, i : i + chunk]), self.pad).numpy()
                 for i in range(0, len(x), chunk)]
        return np.concatenate(parts) if parts else x[:0]

    def key(self, k: int) -> str:
        """What the teacher's outputs on view ``k`` depend on besides the data: a soft-label cache key suffix."""
        return f"{self.kind}:pad{self.pad}:views{self.count}:seed{self.seed}:view{k}"


def fixed_views(kind: str, n: int, input_shape, count: int, seed: int = 0) -> Views:
    """``count`` random views for each of ``n`` images, reproducible from ``seed``."""
    if kind not in KINDS or kind == "none":
        raise ValueError(f"fixed views need an augmentation (crop or crop-flip), got {kind!r}")
    if count < 1:
        raise ValueError(f"the number of views must be at least 1 (got {count})")
    pad = pad_for(input_shape)
    rng = np.random.default_rng(seed)
    offsets = rng.integers(0, 2 * pad + 1, size=(count, n, 2))
    flips = (rng.random((count, n, 1)) < 0.5) if kind == "crop-flip" else np.zeros((count, n, 1), bool)
    return Views(kind, np.concatenate([offsets, flips], axis=2).astype(np.int32), pad, seed)


def picker(views: Views, logits: np.ndarray):
    """A tf function (x batch, sample indices) -> (one random view of each sample, that view's teacher logits),
    for a tf.data map; ``logits`` is (K, N, classes), the teacher's outputs on each view."""
    import tensorflow as tf

    params_t = tf.constant(views.params)
    logits_t = tf.constant(logits.astype(np.float32))
    count = views.count

    def choose(xb, index):
        which = tf.random.uniform(tf.shape(index), 0, count, dtype=tf.int32)
        at = tf.stack([which, index], axis=1)
        return apply(xb, tf.gather_nd(params_t, at), views.pad), tf.gather_nd(logits_t, at)

    return choose
