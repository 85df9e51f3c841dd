"""The house rules of ARCHITECTURE.md, checked: the map names every module, modules stay small (or say why), and
the host's layers import downward only."""
import ast
import os
import re

from conftest import ROOT

EDGEKD = os.path.join(ROOT, "edgekd")
MAX_LINES = 350
ONE_PER_THING = ("convert", "students", os.path.join("distill", "methods"))
# Layers, lowest first: a module may import its own layer or lower ones, never higher.
LAYERS = [
    {"errors"},
    {"budget", "ccompile", "data", "preprocess", "profiles", "progress", "students", "teachers", "tables"},
    {"convert"},  # the formats and parity: sizing converts candidates to measure them
    {"sizing"},
    {"bundle_assembly", "distill", "convert.verified"},
    {"selection", "teacher_weight", "search_setup", "build_data", "build_plan", "qat_fallback", "student_choice"},
    {"pipeline", "demo", "compare", "ranking", "reports", "app", "firmware", "convert.batch"},
    {"cli", "device_cli"},
]


def _modules():
    for folder, _, files in os.walk(EDGEKD):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                yield os.path.relpath(path, EDGEKD), path


def test_the_map_names_every_module():
    text = open(os.path.join(ROOT, "ARCHITECTURE.md")).read()
    missing = []
    for rel, _ in _modules():
        stem = os.path.basename(rel)
        if stem == "__init__.py":
            continue
        parent = os.path.dirname(rel)
        # A module is named by its file name, or, in a one-per-thing folder (a format, a family, a method), by the folder.
        if stem[:-3] not in text and not (parent in ONE_PER_THING and f"{parent}/" in text):
            missing.append(rel)
    assert not missing, f"ARCHITECTURE.md does not mention: {missing}"


def test_modules_stay_small_or_say_why():
    long = []
    for rel, path in _modules():
        lines = open(path).read().splitlines()
        doc = ast.get_docstring(ast.parse("\n".join(lines))) or ""
        if len(lines) > MAX_LINES and "longer than 350 lines" not in doc.lower():
            long.append(f"{rel} ({len(lines)} lines)")
    assert not long, f"over {MAX_LINES} lines without a reason at the top: {long}"


def _key(parts):
    """The layer key of a module path: ``convert.batch`` where it has its own entry, else its top-level name."""
    dotted = ".".join(parts[:2])
    return dotted if any(dotted in layer for layer in LAYERS) else parts[0]


def _layer(name):
    for i, layer in enumerate(LAYERS):
        if name in layer:
            return i
    raise AssertionError(f"edgekd.{name} has no layer in tests/test_structure.py (add it where ARCHITECTURE.md puts it)")


def test_host_layers_import_downward_only():
    upward = []
    for rel, path in _modules():
        parts = rel[:-3].split(os.sep)
        top = parts[0]
        if top == "__init__":
            continue
        here = _layer(_key(parts))
        for node in ast.walk(ast.parse(open(path).read())):
            names = []
            if isinstance(node, ast.ImportFrom):
                if node.level == 0 and node.module and node.module.startswith("edgekd."):
                    names = [node.module.split(".")[1:]]
                elif node.level > 0:
                    depth = rel.count(os.sep) + 1  # how far a relative import climbs to reach edgekd/
                    if node.level == depth:
                        names = [node.module.split(".")] if node.module else [[a.name] for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name.split(".")[1:] for a in node.names if a.name.startswith("edgekd.")]
            for name in names:
                if not (os.path.isdir(os.path.join(EDGEKD, name[0])) or os.path.isfile(os.path.join(EDGEKD, name[0] + ".py"))):
                    continue  # a name from edgekd/__init__.py (e.g. __version__), not a module
                if name[0] != top and _layer(_key(name)) > here:
                    upward.append(f"{rel} imports edgekd.{'.'.join(name)}")
    assert not upward, upward


def test_runtime_never_imports_the_host_or_tensorflow():
    runtime = os.path.join(ROOT, "runtime", "edgekd_runtime")
    bad = []
    for folder, _, files in os.walk(runtime):
        for name in files:
            if name.endswith(".py"):
                text = open(os.path.join(folder, name)).read()
                for m in re.finditer(r"^\s*(?:from|import)\s+(edgekd|tensorflow|tf_keras|keras)\b(?!_runtime)", text, re.M):
                    # The one allowed: TensorFlow's own interpreter, the last of the LiteRT engines, imported when used.
                    if not (name == "litert.py" and m.group(1) == "tensorflow"):
                        bad.append(name)
    assert not bad, bad
