"""`edgekd`: a thin command line over the library. Every command is one library call."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import List, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter drowns the output

import typer

from edgekd_runtime.errors import RuntimeFailure

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help="Distil, size, convert and bundle models for edge devices.")
from .device_cli import profiles_app, size  # noqa: E402  (light: typer only)
from .reports.cli import bundle_app, reports_app  # noqa: E402  (light: typer only; the server loads on use)
from .app.cli import app_app  # noqa: E402  (light: typer only; the writer loads on use)
from .firmware.cli import firmware_command  # noqa: E402  (light: typer only; the build loads on use)

app.command()(size)
app.add_typer(profiles_app, name="profiles")

app.add_typer(reports_app, name="reports")
app.add_typer(bundle_app, name="bundle")
app.add_typer(app_app, name="app")
app.command("firmware")(firmware_command)

PREPROCESS_HELP = ("how raw data map to the inputs of the teacher and the student: auto (uint8 /255, else min-max of the training data), "
                   "none, scale=S,offset=O, or per channel mean=M1,M2,..,std=S1,S2,.. (after scale=/offset= when given); recorded in "
                   "distill.json and the bundle")


@app.command()
def demo(
    out: Path = typer.Option(Path("out/demo"), help="folder for the teacher, bundles and summary.json"),
    epochs: int = typer.Option(30, help="most distillation epochs per student (early stopping usually ends sooner)"),
    time_budget: Optional[str] = typer.Option(None, help="time budget of each profile's build (default: edgekd.demo.DEMO_BUDGET, 60s)"),
    quiet: bool = typer.Option(False, help="no progress bars"),
):
    """Run the whole pipeline on scikit-learn's digits for a phone, a Jetson Nano and an MCU."""
    from .demo import DEMO_BUDGET, run_demo

    run_demo(out, epochs=epochs, progress=not quiet, time_budget=time_budget or DEMO_BUDGET)
    typer.echo(f"summary: {out / 'summary.json'}")


@app.command()
def build(
    teacher: Path = typer.Option(..., help="teacher model file (.keras, .h5) or SavedModel folder"),
    data: str = typer.Option(..., help="training data: .npz with x and y, an image folder, or 'digits'"),
    eval_data: str = typer.Option(..., "--eval", help="evaluation data, same forms as --data"),
    profile: str = typer.Option(..., help="device profile name or YAML path"),
    out: Path = typer.Option(..., help="bundle folder to write (the trained Keras student goes to OUT.student/)"),
    time_budget: str = typer.Option("20m", help="wall time for the whole build: labels, student choice, training, conversion (e.g. 20m, 1h, 90s)"),
    student: Optional[str] = typer.Option(None, help="student spec (e.g. mobilenetv3:width=0.5); default: the smallest that fits the profile and keeps --retain of the teacher"),
    family: Optional[str] = typer.Option(None, help="student family to choose from (default: by input shape and profile)"),
    retain: float = typer.Option(0.97, help="keep at least this fraction of the teacher's validation accuracy"),
    max_student_ratio: float = typer.Option(0.25, help="largest student, as a fraction of the teacher's parameters"),
    upscale: bool = typer.Option(False, "--upscale", help="also try input resolutions above the data's own"),
    candidates: int = typer.Option(6, help="fitting students the tournament starts with (spread from the smallest to the largest)"),
    formats: Optional[str] = typer.Option(None, help="comma-separated formats (default: the profile's), e.g. tflite-int8,tflite-fp32"),
    qat: bool = typer.Option(True, "--qat/--no-qat", help="when int8 misses the parity bounds, fine-tune quantization-aware within the budget"),
    temperature: Optional[float] = typer.Option(None, help="softmax temperature T (default: chosen on the validation split)"),
    alpha: Optional[float] = typer.Option(None, help="weight of the teacher term, 0 = labels only (default: chosen on the validation split)"),
    epochs: int = typer.Option(30, help="most epochs; training stops earlier on --patience or the budget"),
    patience: int = typer.Option(3, help="epochs without a better validation accuracy before stopping"),
    seed: int = typer.Option(0, help="seed of the validation split, the students' initial weights and the batches"),
    strict: bool = typer.Option(False, "--strict", help="exit non-zero when the bundle keeps less than --retain of the teacher's accuracy"),
    zip: bool = typer.Option(False, "--zip", help="also pack the bundle as a .zip"),
    force: bool = typer.Option(False, help="replace an existing --out"),
    quiet: bool = typer.Option(False, help="no progress bars"),
    sign: Optional[Path] = typer.Option(None, help="ed25519 private key (from `edgekd bundle keygen`) to sign the bundle with"),
    preprocess: str = typer.Option("auto", help=PREPROCESS_HELP),
    app_out: Optional[Path] = typer.Option(None, "--app", help="also write the phone web app (edgekd app) of the bundle to this folder"),
):
    """Distil the smallest student that fits PROFILE within a time budget, convert it, verify it, write the bundle."""
    from .pipeline import build as run_build

    fmt_list = [f.strip() for f in formats.split(",")] if formats else None
    if app_out is not None:
        # Checked before the build: finding out after twenty minutes of training that no artifact can run in a browser wastes them.
        from .app.writer import check_app_formats, check_out
        from .profiles import load_profile

        check_app_formats(fmt_list or load_profile(profile).formats)
        check_out(app_out, force)

    result = run_build(teacher, data, eval_data, profile, out, student=student, family=family, retain=retain, max_student_ratio=max_student_ratio,
                       upscale=upscale, candidates=candidates, formats=fmt_list, qat=qat,
                       temperature=temperature, alpha=alpha, epochs=epochs, patience=patience, time_budget=time_budget, strict=strict,
                       make_zip=zip, force=force, progress=not quiet, sign_key=sign, preprocess=preprocess, seed=seed)
    for conv in result.converted:
        art = conv.artifact
        m = art.host_metrics
        measured = m.get("accuracy") is not None and m.get("agreement_with_keras") is not None
        detail = f"accuracy {100 * m['accuracy']:.2f}%, agreement {100 * m['agreement_with_keras']:.2f}%" if measured else "-"
        typer.echo(f"{art.format:14s} {art.bytes:>9d} bytes  {detail}  [{art.verification}]")
    s = result.extra["summary"]
    typer.echo(f"student {result.spec}: {result.fit.cost.params:,} params, {result.fit.cost.macs:,} MACs")
    if s["bundle_accuracy"] is not None:
        typer.echo(f"on the same {s['eval_samples']} eval samples: teacher {100 * s['teacher_accuracy']:.2f}%, bundle {100 * s['bundle_accuracy']:.2f}% "
                   f"({s['percent_of_teacher']:.1f}% of the teacher)")
    typer.echo(f"time: {result.extra['seconds']['total']:.0f} s; Keras student and distill.json: {result.extra['student_dir']}")
    typer.echo(f"bundle: {result.bundle}")
    if app_out is not None:
        from .app import write_app
        from .app.cli import describe

        typer.echo(describe(write_app(result.bundle, app_out, force=force)))


@app.command()
def convert(
    student: Path = typer.Argument(..., help="trained tf_keras student: .keras/.h5 file, SavedModel folder, or the folder `edgekd distill`/`build` wrote (student/ + distill.json, whose preprocessing is used)"),
    to: str = typer.Option(..., "--to", help="comma-separated targets: tflite-fp32, tflite-fp16, tflite-dynamic, tflite-int8, tflm-int8 (tflm), c-int8 (c: a C library, no interpreter), onnx, tensorrt, coreml"),
    out: Path = typer.Option(..., help="output folder (a bundle the runtime reads, plus parity.json)"),
    calibration: Optional[str] = typer.Option(None, help="representative data for int8 (.npz, image folder, 'digits'): training inputs"),
    eval_data: Optional[str] = typer.Option(None, "--eval", help="labelled data for the parity check (default: the calibration data)"),
    io: Optional[str] = typer.Option(None, help="tflite-int8 input/output type: int8 (default), uint8 or float"),
    opset: Optional[int] = typer.Option(None, help="ONNX opset (default: the profile's onnx_opset, else 17)"),
    fixed_batch: bool = typer.Option(False, "--fixed-batch", help="ONNX with batch 1 instead of a dynamic batch"),
    coreml_precision: str = typer.Option("fp16", help="CoreML compute precision: fp16 or fp32"),
    coreml_compress: Optional[str] = typer.Option(None, help="CoreML weight compression: int8, palettize2/4/6/8"),
    trt_precision: str = typer.Option("fp16", help="TensorRT build precision on the device: fp32, fp16 or int8"),
    teacher_fingerprint: Optional[str] = typer.Option(None, help="sha256 of the teacher, recorded in the metadata"),
    profile: Optional[str] = typer.Option(None, help="device profile the bundle is for (recorded in the manifest; its op limits are checked)"),
    preprocess: Optional[str] = typer.Option(None, help="the student's input preprocessing (forms as for build); default: the one in the student's distill.json, else auto from --calibration. A value that differs from distill.json's is an error"),
    force: bool = typer.Option(False, help="replace an existing --out"),
):
    """Convert a trained STUDENT to each target, check every artifact against it, write a bundle."""
    from .convert.batch import convert_student, raise_for_failures

    result = convert_student(
        student, to, out, calibration=calibration, eval_data=eval_data, force=force, io=io, opset=opset, fixed_batch=fixed_batch,
        coreml_precision=coreml_precision, coreml_compress=coreml_compress or None, trt_precision=trt_precision, teacher_fingerprint=teacher_fingerprint,
        profile=profile, preprocess=preprocess,
    )
    pre = result.parity.get("preprocessing", {})
    typer.echo(f"preprocessing {pre.get('option')} ({pre.get('source')})")
    for conv in result.converted:
        art = conv.artifact
        m = art.host_metrics
        if "agreement_with_keras" in m:
            acc = f", accuracy {100 * m['accuracy']:.2f}%" if m.get("accuracy") is not None else ""
            detail = f"{art.verification}: agreement {100 * m['agreement_with_keras']:.2f}%, max abs diff {m['max_abs_diff']:.3g}{acc}"
        else:
            detail = f"{art.verification} ({m.get('reason', '')})"
        typer.echo(f"{art.format:14s} {art.bytes:>10d} bytes  {detail}")
    if result.keras_accuracy is not None:
        typer.echo(f"Keras student accuracy {100 * result.keras_accuracy:.2f}% on {result.parity['eval_samples']} samples")
    typer.echo(f"bundle: {result.out}  (parity: {result.out / 'parity.json'})")
    raise_for_failures(result)


@app.command()
def compare(
    teacher: Path = typer.Option(..., help="teacher model file (.keras, .h5) or SavedModel folder (tf_keras, to prune it)"),
    student: Path = typer.Option(..., help="distilled student model file or folder"),
    data: str = typer.Option(..., help="training data: calibration for int8 and the pruning fine-tune"),
    eval_data: str = typer.Option(..., "--eval", help="evaluation data, same forms as --data"),
    out: Optional[Path] = typer.Option(None, help="folder for compare.json, compare.md and compare.png"),
    sparsity: float = typer.Option(0.8, help="pruning sparsity"),
    prune_epochs: int = typer.Option(2, help="fine-tune epochs while pruning"),
    runs: int = typer.Option(200, help="timed runs per model"),
    eval_limit: Optional[int] = typer.Option(None, help="use only the first N eval samples"),
    preprocess: Optional[str] = typer.Option(None, help="input preprocessing of both models (forms as for build); default: the one in the student's distill.json, else auto"),
    force: bool = typer.Option(False, help="replace an existing --out"),
    quiet: bool = typer.Option(False, help="no progress bars"),
):
    """Measure teacher, distilled student, pruned teacher and int8 teacher: size, latency, accuracy."""
    from .compare import compare as run_compare
    from .compare import print_table

    result = run_compare(teacher, student, data, eval_data, out, sparsity=sparsity, prune_epochs=prune_epochs, runs=runs, eval_limit=eval_limit, force=force, progress=not quiet,
                         preprocess=preprocess)
    print_table(result)
    for kind, path in result.files.items():
        typer.echo(f"{kind}: {path}")


@app.command()
def distill(
    teacher: List[str] = typer.Option(..., help="teacher: .keras/.h5/.onnx/.tflite file or SavedModel folder (repeat for --method multi)"),
    data: str = typer.Option(..., help="training data: .npz with x and y, an image folder, or 'digits'"),
    out: Path = typer.Option(..., help="folder for student/ (tf_keras SavedModel) and distill.json"),
    val: Optional[str] = typer.Option(None, help="validation data (default: 10% of --data held out)"),
    unlabeled: Optional[str] = typer.Option(None, help="unlabeled transfer data (.npz with x): the teacher labels it"),
    profile: Optional[str] = typer.Option(None, help="choose the student for this device profile: the smallest that fits and keeps 97% of the teacher, ranked by a short tournament (a third of --time-budget)"),
    student: Optional[str] = typer.Option(None, help="family spec (mobilenetv3:width=0.5) or a Keras model file whose architecture is trained afresh"),
    method: str = typer.Option("kd", help="kd | fitnet | at | crd | multi | progressive | self"),
    temperature: float = typer.Option(4.0, help="softmax temperature T"),
    alpha: float = typer.Option(0.7, help="weight of the teacher term (0 = labels only)"),
    epochs: int = typer.Option(30),
    batch_size: int = typer.Option(64),
    learning_rate: float = typer.Option(3e-3, help="peak Adam learning rate (cosine decay)"),
    qat: bool = typer.Option(False, "--qat", help="quantization-aware: train the student wrapped by tfmot's quantize_model"),
    prune: Optional[float] = typer.Option(None, help="pruning-aware: target sparsity of Conv2D/Dense kernels, e.g. 0.5"),
    feature_layers: Optional[str] = typer.Option(None, help="fitnet/at pairs student_layer:teacher_layer,... (default: matched by spatial size)"),
    beta: Optional[float] = typer.Option(None, help="weight of the feature term (fitnet 1, at 1000, crd 0.8)"),
    teacher_weights: Optional[str] = typer.Option(None, help="multi: one weight per teacher, e.g. 0.6,0.4 (default: from validation accuracy)"),
    teacher_classes: Optional[List[str]] = typer.Option(None, help="multi: per teacher, the classes it scores ('0-4', '5,6', 'all')"),
    augment: str = typer.Option("none", help="none | crop | crop-flip (random crops/flips each step)"),
    teacher_mode: str = typer.Option("auto", help="auto | cached | online. auto caches the teacher's outputs once, and runs it online in every step only with --augment (cached outputs would describe un-augmented images). cached with --augment labels --views fixed crops of every image once: epochs then cost what scratch epochs cost (kd, progressive, self)"),
    views: int = typer.Option(8, help="with --augment and --teacher-mode cached: labelled views per image, one drawn per image each epoch"),
    strategy: str = typer.Option("none", help="none | mirrored | multiworker (reads TF_CONFIG; run the same command on every worker)"),
    precision: str = typer.Option("float32", help="float32 | mixed_float16 (GPU only) | mixed_bfloat16 (CPUs with bf16 instructions)"),
    generations: int = typer.Option(1, help="self: born-again generations"),
    max_gap: float = typer.Option(10.0, help="progressive: largest teacher/student parameter ratio per step"),
    seed: int = typer.Option(0),
    time_budget: str = typer.Option("20m", help="wall time for the whole run; training stops before it ends (e.g. 20m, 1h, 90s)"),
    patience: int = typer.Option(3, help="epochs without a better validation accuracy before stopping (0: train every epoch)"),
    preprocess: str = typer.Option("auto", help=PREPROCESS_HELP),
    force: bool = typer.Option(False, help="replace an existing --out"),
    quiet: bool = typer.Option(False, help="no progress bars"),
):
    """Distil TEACHER(s) into a student with one of the methods; write OUT/student/ and OUT/distill.json."""
    from .distill.distributed import is_chief
    from .distill.options import parse_classes, parse_floats, parse_pairs
    from .distill.run import run_distillation

    if out.exists() and not force:
        from .errors import EdgekdError

        raise EdgekdError(f"{out} already exists", "choose another --out or pass --force to replace it")
    if force:
        from .bundle_assembly import check_replaceable

        check_replaceable(out, kind="student")  # before training: a refusal must not cost the minutes of a run
    run = run_distillation(
        teacher, data, student=student, profile=profile, method=method, val=val, unlabeled=unlabeled, temperature=temperature, alpha=alpha,
        epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, qat=qat, prune=prune, feature_layers=parse_pairs(feature_layers),
        beta=beta, teacher_weights=parse_floats(teacher_weights, "--teacher-weights"), teacher_classes=parse_classes(teacher_classes, len(teacher)),
        augment=augment, teacher_mode=teacher_mode, views=views, strategy=strategy, precision=precision, generations=generations, max_gap=max_gap,
        progress=not quiet, seed=seed, time_budget=time_budget, patience=patience or None, preprocess=preprocess,
    )
    for t in run.teachers:
        acc = f"{100 * t['val_accuracy']:.2f}%" if t.get("val_accuracy") is not None else "-"
        typer.echo(f"teacher {t['name']} ({t['kind']}, sha256 {t['fingerprint'][:12]}): val accuracy {acc}")
    typer.echo(f"student {run.student.count_params()} params: val accuracy {100 * run.val_accuracy:.2f}%, "
               f"{run.result.seconds_per_epoch:.2f} s/epoch, teacher inference {run.result.teacher_seconds:.1f} s")
    if is_chief():
        typer.echo(f"written: {run.save(out, force=force)}")
    else:
        typer.echo("not the chief worker: nothing written (worker 0 writes --out)")


@app.command()
def tune(
    teacher: str = typer.Option(..., help="teacher model file or SavedModel folder"),
    data: str = typer.Option(..., help="training data: .npz with x and y, an image folder, or 'digits'"),
    val: Optional[str] = typer.Option(None, help="validation data (default: 10% of --data held out)"),
    profile: Optional[str] = typer.Option(None, help="tune on the largest student that fits this device profile"),
    student: Optional[str] = typer.Option(None, help="family spec or Keras model file"),
    temperatures: str = typer.Option("2,3,4,6,8", help="temperature grid"),
    alphas: str = typer.Option("0.5,0.7,0.9", help="alpha grid (weight of the teacher term)"),
    epochs: int = typer.Option(5, help="epochs per grid point"),
    out: Optional[Path] = typer.Option(None, help="write the best setting and the table here (JSON)"),
    preprocess: str = typer.Option("auto", help=PREPROCESS_HELP),
    quiet: bool = typer.Option(False, help="no progress bars"),
):
    """Search temperature and alpha on a validation split; print the table and the best setting."""
    from .distill.options import parse_floats
    from .distill.run import run_tuning

    result = run_tuning(teacher, data, student=student, profile=profile, val=val, temperatures=parse_floats(temperatures, "--temperatures"),
                        alphas=parse_floats(alphas, "--alphas"), epochs=epochs, progress=not quiet,
                        preprocess=preprocess)
    typer.echo(result.table())
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"best": result.best, "rows": result.rows, "epochs": epochs}, indent=2))
        typer.echo(f"written: {out}")


def main(argv: Optional[List[str]] = None) -> int:
    from .budget import close_open_bars

    try:
        # Commands return nothing; an int is the code of an Exit, and typer turns Ctrl-C into Exit(130).
        code = app(args=argv, standalone_mode=False)
    except RuntimeFailure as exc:
        close_open_bars()
        typer.echo(f"edgekd: error: {exc}", err=True)
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        close_open_bars()
        typer.echo("edgekd: aborted", err=True)
        return 130
    except Exception as exc:  # usage errors: click's, or the copy of click newer typer versions carry
        import click

        usage = isinstance(exc, click.ClickException) or any(c.__name__ == "ClickException" for c in type(exc).__mro__)
        if usage:
            exc.show()
            return exc.exit_code
        raise
    if isinstance(code, int) and code:
        if code == 130:
            typer.echo("edgekd: aborted", err=True)
        return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
