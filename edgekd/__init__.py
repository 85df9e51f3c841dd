"""edgekd: distil a big model into a small one sized for a real device, convert it, verify it, bundle it.

>>> import edgekd                                                     # doctest: +SKIP
>>> result = edgekd.build("teacher.keras", "train.npz", "test.npz", profile="cortex-m7", out="out/mcu")
"""
__version__ = "0.1.0"


def __getattr__(name):
    # Keep `import edgekd` light: TensorFlow loads only when a function that needs it is used.
    if name == "build":
        from .pipeline import build

        return build
    if name == "demo":
        from .demo import run_demo

        return run_demo
    if name in ("load_profile", "available_profiles"):
        from . import profiles

        return getattr(profiles, name)
    if name == "load_dataset":
        from .data import load_dataset

        return load_dataset
    raise AttributeError(name)


__all__ = ["build", "demo", "load_profile", "available_profiles", "load_dataset", "__version__"]
