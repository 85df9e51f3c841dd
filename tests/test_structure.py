"""The house rules of ARCHITECTURE.md, checked: the map names every module of both packages and cites only files,
modules and names that exist, its layer list is the one enforced here, modules stay small (or say why), and the
host's layers import downward only."""
import ast
import os
import re

from conftest import ROOT

EDGEKD = os.path.join(ROOT, "edgekd")
RUNTIME = os.path.join(ROOT, "runtime", "edgekd_runtime")
MAX_LINES = 350
ONE_PER_THING = ("convert", "students", os.path.join("distill", "methods"))
# Layers, lowest first: a module may import its own layer or lower ones, never higher.
LAYERS = [
    {"errors"},
    {"budget", "ccompile", "data", "preprocess", "profiles", "progress", "students", "teachers", "tables"},
    {"convert"},  # the formats and parity: sizing converts candidates to measure them
    {"sizing"},
    {"bundle_assembly", "distill", "convert.verified"},
    {"selection", "teacher_weight", "search_setup", "build_data", "build_plan", "build_summary", "qat_fallback", "student_choice"},
    # convert.batch and distill.run are `edgekd convert` and `edgekd distill`; distill.student chooses the student of
    # an `edgekd distill` run (for a profile, as `edgekd size` does).
    {"pipeline", "demo", "compare", "ranking", "reports", "app", "firmware", "convert.batch", "distill.run", "distill.student"},
    {"cli", "device_cli"},
]


def _modules(base=EDGEKD):
    for folder, _, files in os.walk(base):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                yield os.path.relpath(path, base), path


def _map():
    return open(os.path.join(ROOT, "ARCHITECTURE.md")).read()


def test_the_map_names_every_module():
    text = _map()
    missing = []
    for base, one_per_thing in ((EDGEKD, ONE_PER_THING), (RUNTIME, ("backends",))):
        for rel, _ in _modules(base):
            stem = os.path.basename(rel)
            if stem in ("__init__.py", "__main__.py"):
                continue
            parent = os.path.dirname(rel)
            # A module is named by its file name, or, in a one-per-thing folder (a format, a family, a method, an
            # engine), by the folder.
            if stem[:-3] not in text and not (parent in one_per_thing and f"{parent}/" in text):
                missing.append(os.path.relpath(os.path.join(base, rel), ROOT))
    assert not missing, f"ARCHITECTURE.md does not mention: {missing}"


def test_the_maps_layers_are_the_ones_checked_here():
    # The map's arrow list, top to bottom, is LAYERS read backwards: the rule a reader sees is the rule enforced.
    prose = re.search(r"Inside `edgekd/`, imports go downward.*?checks it\):(.*?)\n\n", _map(), re.S).group(1)
    on_the_map = [set(re.findall(r"`([\w.]+)`", step)) for step in prose.split("→")]
    assert on_the_map == LAYERS[::-1]


def _bound_names(path):
    names = set()
    for node in ast.parse(open(path).read()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _resolve(dotted):
    """Where ``a.b.c`` (or ``a/b.c``) of the map lies: (module file, the name left to find in it), or None when its
    first part is no module of either package (``tensorflow.lite``)."""
    parts = re.split(r"[./]", dotted)
    package = parts[0] in ("edgekd", "edgekd_runtime")  # a name in the package's __init__ when nothing else
    if package:
        bases, parts = [EDGEKD if parts[0] == "edgekd" else RUNTIME], parts[1:]
    else:
        # A bare first part is a module of either package, at the top or, named alone (``loaders``), anywhere.
        bases = [EDGEKD, RUNTIME] + sorted({os.path.dirname(p) for b in (EDGEKD, RUNTIME) for r, p in _modules(b)
                                            if os.path.basename(r) == parts[0] + ".py"})
    for base in bases:
        here, rest = base, list(parts)
        while rest and os.path.isdir(os.path.join(here, rest[0])):
            here = os.path.join(here, rest.pop(0))
        if rest and os.path.isfile(os.path.join(here, rest[0] + ".py")):
            here = os.path.join(here, rest.pop(0) + ".py")
        if here == base and not package:
            continue
        return (os.path.join(here, "__init__.py") if os.path.isdir(here) else here), rest
    return None


def test_what_the_map_names_exists():
    text = _map()
    fenced = re.findall(r"```\n(.*?)```", text, re.S)
    inline = re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    wrong = []
    # Files and folders: paths with a folder in them, and the source, profile, doc and script files named alone.
    repo = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("node_modules", "__pycache__")]
        repo += [os.path.relpath(os.path.join(folder, n), ROOT) + slash for names, slash in ((files, ""), (dirs, "/")) for n in names]
    for name in inline:
        if "node_modules" in name:
            continue  # made by `npm ci`, not part of the tree
        if re.fullmatch(r"[\w./-]+", name) and "/." not in name and ("/" in name or re.search(r"\.(py|yaml|md|sh)$", name)):
            if not any(p == name or p.endswith("/" + name) for p in repo):
                wrong.append(f"no file {name}")
    # Modules and the names in them: `a.b.name`, in the text and in the data flow's drawing.
    dotted = [n for n in inline if re.fullmatch(r"\w+(?:[./]\w+)+", n) and not re.search(r"\.(py|yaml|md|sh|json|npz|c|h|js)$", n)]
    dotted += [n for block in fenced for n in re.findall(r"\b[a-z_]+(?:[./][A-Za-z_]\w*)+", block) if not n.endswith((".json", ".npz", ".zip"))]
    for name in dotted:
        where = _resolve(name)
        if where is not None and where[1] and where[1][0] not in _bound_names(where[0]):
            wrong.append(f"{name}: no {where[1][0]} in {os.path.relpath(where[0], ROOT)}")
    # Registries: "`NAME` in `path`".
    for name, path in re.findall(r"`(\w+)` in `([\w/]+\.py)`", text):
        if name not in _bound_names(os.path.join(ROOT, path)):
            wrong.append(f"no {name} in {path}")
    assert not wrong, wrong


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
