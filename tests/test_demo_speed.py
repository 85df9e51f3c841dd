"""`edgekd demo` as a user reads its output: each student within a point of the teacher's accuracy, its file at least
4x smaller than the teacher's at the same precision, and each build's record accounting for all of its time."""
import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_student_is_small_close_to_the_teacher_and_its_build_time_adds_up(tmp_path):
    from edgekd.demo import DEMO_BUDGET, run_demo
    from edgekd.budget import parse_duration

    out = tmp_path / "demo"
    rows = run_demo(out=out, profiles=("cortex-m7",), progress=False)
    assert rows == json.loads((out / "summary.json").read_text())
    teacher, student = rows
    assert teacher["name"] == "teacher" and student["profile"] == "cortex-m7"

    # Same precision: the int8 student against the teacher's own int8 file, both read from disk.
    assert student["format"] == "tflm-int8" and student["teacher_format_same_precision"] == "tflite-int8"
    teacher_int8 = next((out / "teacher" / "tflite-int8").glob("*.tflite"))
    assert teacher_int8.stat().st_size == student["teacher_bytes_same_precision"]
    assert 4 * student["bytes"] <= teacher_int8.stat().st_size
    assert student["accuracy_drop"] <= 1.0, student

    record = json.loads((out / "cortex-m7.student" / "distill.json").read_text())
    seconds = record["seconds"]
    phases = {k: v for k, v in seconds.items() if k != "total"}
    assert {"plan", "teacher labels", "student choice", "training", "save student", "convert + verify"} <= set(phases)
    assert abs(sum(phases.values()) - seconds["total"]) <= 0.03 * seconds["total"], seconds
    # Within its budget: the demo's own, or the minimum the plan measured when the machine is too busy for it.
    assert record["time_budget_seconds"] >= parse_duration(DEMO_BUDGET)
    assert seconds["total"] <= 1.1 * record["time_budget_seconds"]
