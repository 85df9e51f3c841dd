"""`edgekd build --sign KEY`: the bundle comes out signed, and a bad key stops the build before training."""
import pytest

from conftest import run_cli


def test_build_signs_the_bundle(tmp_path, teacher_path, digits_split):
    from edgekd.pipeline import build
    from edgekd_runtime import Bundle, IntegrityError
    from edgekd_runtime.signing import generate_keypair

    private, public = generate_keypair(str(tmp_path / "key"))
    train, test = digits_split
    result = build(teacher_path, train, test, "linux-x86", tmp_path / "signed", student="mlp:width=0.5,depth=1",
                   formats=["tflite-fp32"], epochs=2, progress=False, sign_key=private)
    bundle = Bundle.open(str(result.bundle), public_key=public, require_signature=True)
    assert bundle.manifest.name == "signed"
    other_private, other_public = generate_keypair(str(tmp_path / "other"))
    with pytest.raises(IntegrityError):
        Bundle.open(str(result.bundle), public_key=other_public, require_signature=True)


def test_missing_key_fails_before_training(tmp_path):
    proc = run_cli("edgekd", "build", "--teacher", "t.keras", "--data", "digits", "--eval", "digits", "--profile", "cortex-m7",
                   "--out", str(tmp_path / "o"), "--sign", str(tmp_path / "no-such.key"))
    assert proc.returncode != 0 and "no-such.key" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()
