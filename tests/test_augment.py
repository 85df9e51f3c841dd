"""Crops and flips, and the fixed views whose teacher labels are cached: each image must be paired with the
soft labels of exactly the view it is trained on."""
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from edgekd.distill.augment import apply, fixed_views, online, picker


def _numpy_view(image, dy, dx, flip, pad):
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    out = padded[dy : dy + image.shape[0], dx : dx + image.shape[1]]
    return out[:, ::-1] if flip else out


def test_apply_crops_the_reflect_padded_image_and_mirrors_it():
    rng = np.random.default_rng(0)
    x = rng.random((5, 16, 16, 3)).astype(np.float32)
    params = np.array([[0, 0, 0], [4, 4, 0], [2, 3, 1], [4, 0, 1], [1, 2, 0]], np.int32)
    got = apply(tf.constant(x), tf.constant(params), pad=2).numpy()
    for i, (dy, dx, flip) in enumerate(params):
        np.testing.assert_array_equal(got[i], _numpy_view(x[i], dy, dx, flip, 2))
    # The centred, unflipped view is the image itself.
    np.testing.assert_array_equal(apply(tf.constant(x), tf.constant([[2, 2, 0]] * 5, tf.int32), pad=2).numpy(), x)


def test_fixed_views_are_reproducible_and_within_the_padding():
    a = fixed_views("crop-flip", 100, (32, 32, 3), count=4, seed=1)
    b = fixed_views("crop-flip", 100, (32, 32, 3), count=4, seed=1)
    np.testing.assert_array_equal(a.params, b.params)
    assert a.params.shape == (4, 100, 3) and a.pad == 4
    assert a.params[..., :2].min() >= 0 and a.params[..., :2].max() <= 8 and set(np.unique(a.params[..., 2])) == {0, 1}
    assert not np.array_equal(a.params, fixed_views("crop-flip", 100, (32, 32, 3), count=4, seed=2).params)
    assert not fixed_views("crop", 100, (32, 32, 3), count=4).params[..., 2].any()
    with pytest.raises(ValueError):
        fixed_views("none", 10, (32, 32, 3), count=2)


def test_picker_pairs_each_drawn_view_with_its_own_logits():
    rng = np.random.default_rng(0)
    x = rng.random((40, 8, 8, 1)).astype(np.float32)
    views = fixed_views("crop-flip", len(x), x.shape[1:], count=5, seed=0)
    logits = np.zeros((5, 40, 3), np.float32)
    logits[:, :, 0] = np.arange(5)[:, None]  # which view
    logits[:, :, 1] = np.arange(40)[None, :]  # which sample
    choose = picker(views, logits)
    index = np.array([7, 3, 3, 39, 0, 12], np.int32)
    images, targets = choose(tf.constant(x[index]), tf.constant(index))
    images, targets = images.numpy(), targets.numpy()
    np.testing.assert_array_equal(targets[:, 1], index)
    for img, (k, i, _) in zip(images, targets.astype(int)):
        np.testing.assert_array_equal(img, views.images(x, k)[i])
    # Over many draws every view turns up.
    seen = {int(k) for _ in range(20) for k in choose(tf.constant(x), tf.range(40))[1].numpy()[:, 0]}
    assert seen == set(range(5))


def test_online_augmentation_keeps_shape_and_content():
    x = np.random.default_rng(0).random((8, 32, 32, 3)).astype(np.float32)
    assert online("none", x.shape[1:]) is None
    out = online("crop-flip", x.shape[1:])(tf.constant(x)).numpy()
    assert out.shape == x.shape and not np.array_equal(out, x)
    # A crop shifts by at most 4 pixels: the centre 24x24 of every view is in the original (maybe mirrored).
    for o, img in zip(out, x):
        centre = o[4:28, 4:28]
        assert any(np.array_equal(centre, cand[dy : dy + 24, dx : dx + 24]) for cand in (img, img[:, ::-1]) for dy in range(9) for dx in range(9))


def test_distill_checks_view_logits_before_training():
    import tf_keras as keras

    from edgekd.distill import distill
    from edgekd.errors import EdgekdError

    x = np.random.default_rng(0).random((20, 8, 8, 1)).astype(np.float32)
    y = np.arange(20) % 3
    student = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    views = fixed_views("crop", len(x), x.shape[1:], count=2)
    good = np.zeros((2, 20, 3), np.float32)
    cases = [
        (dict(views=(views, good[:, :10])), "view logits are"),
        (dict(views=(views, np.zeros((2, 20, 4), np.float32))), "teacher gives 4 classes but the student 3"),
        (dict(views=(views, np.where(np.eye(20, 3, dtype=bool)[None], np.nan, good))), "NaN or Inf"),
        (dict(views=(views, good), teacher_logits=good[0]), "views bring their own augmentation"),
    ]
    for kwargs, message in cases:
        with pytest.raises(EdgekdError, match=message):
            distill(student, x, y, epochs=1, progress=False, **kwargs)
