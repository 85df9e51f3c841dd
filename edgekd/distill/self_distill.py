"""Self-distillation, born-again style (Furlanello et al., 2018): a student of the teacher's own architecture,
freshly initialised, learns from the teacher; repeated, each generation teaches the next."""
from __future__ import annotations

from ..errors import TeacherError


def teacher_architecture(teacher_model, seed: int = 0):
    """A freshly initialised tf_keras copy of the teacher's architecture that outputs logits (a final softmax
    becomes linear, since the losses read logits)."""
    import tf_keras as keras

    if not isinstance(teacher_model, keras.Model):
        raise TeacherError("self-distillation copies the teacher's architecture, which needs a tf_keras teacher",
                           "save the teacher with tf_keras, or use --method kd with a --student")
    last = teacher_model.layers[-1]

    def clone(layer):
        cfg = layer.get_config()
        if layer is last:
            if cfg.get("activation") == "softmax":
                cfg["activation"] = "linear"
            elif type(layer).__name__ == "Softmax":
                return keras.layers.Activation("linear", name=layer.name)
        return layer.__class__.from_config(cfg)

    keras.utils.set_random_seed(seed)
    return keras.models.clone_model(teacher_model, clone_function=clone)
