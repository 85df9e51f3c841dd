"""Write the phone app: a static, installable web app (PWA) that runs a bundle's LiteRT artifact in the browser
with LiteRT.js (wasm/XNNPACK, or WebGPU where the browser has it).

Everything the page needs is in the folder written here, so it works offline once a service worker has cached it:
the model file (copied from the verified bundle), ``app.json`` (labels, input spec, preprocessing, the artifact's
host figures, the report's static fields), ``eval.bin`` (a slice of the bundle's eval set with the host's outputs,
for the page's self-check), LiteRT.js and its wasm (copied from ``web/node_modules``, installed by ``npm ci`` from
the pinned ``web/package-lock.json``: nothing loads from a CDN), the page's own files (``static/``), the web app
manifest, generated icons and the service worker with its precache list.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from edgekd_runtime import Artifact, Bundle, Manifest
from edgekd_runtime.manifest import MANIFEST_NAME, sha256_file

from .. import __version__
from ..errors import EdgekdError

LITERTJS_VERSION = "2.5.3"  # web/package.json pins the same version
# LiteRT.js picks the relaxed-SIMD build when the browser has it, else the compat one; the threaded and JSPI
# builds are only loaded on request (threads need cross-origin isolation; JSPI is for WebNN), so they stay out.
WASM_BUILDS = ("litert_wasm_internal", "litert_wasm_compat_internal")
# What LiteRT.js can feed and read (its TensorBuffer types); int8 inputs and outputs it cannot.
BROWSER_DTYPES = ("float32", "uint8", "int32")
APP_FORMATS = ("tflite-fp32", "tflite-fp16", "tflite-dynamic")  # the build's TFLite formats with float I/O
EVAL_BYTES = 4 << 20  # cap on the eval slice copied into the app: a phone downloads it on the first visit
APP_CONFIG = "app.json"
STATIC = Path(__file__).with_name("static")
ICON_SIZES = (192, 512)
MAKE_ONE = "convert with --to tflite-fp32 (or tflite-int8 with --io uint8), or build with --formats including tflite-fp32"


@dataclass
class AppResult:
    out: Path
    artifact: Artifact
    files: List[str] = field(default_factory=list)
    bytes: int = 0
    eval_samples: int = 0


def browser_problem(art: Artifact) -> Optional[str]:
    """Why LiteRT.js cannot run ``art`` (None when it can): a TFLite file, batch 1, float32/uint8/int32 I/O,
    verified by the host."""
    if art.engine != "litert" or not art.format.startswith("tflite-"):
        return f"{art.format} is not a LiteRT (.tflite) model"
    for side, spec in (("input", art.input), ("output", art.output)):
        if spec.dtype not in BROWSER_DTYPES:
            return f"{art.format} has {spec.dtype} {side}s (LiteRT.js takes {', '.join(BROWSER_DTYPES)})"
    if not art.input.shape or art.input.shape[0] != 1:
        return f"{art.format} has input shape {art.input.shape}, not a fixed batch of 1"
    if art.verification != "passed":
        return f"{art.format} is {art.verification}, not verified by the host"
    return None


def browser_artifact(manifest: Manifest, fmt: Optional[str] = None) -> Artifact:
    """The artifact the app runs: ``fmt`` when given, else the first one (primary first) LiteRT.js can run."""
    candidates = [manifest.artifact(fmt)] if fmt else manifest.artifacts
    problems = []
    for art in candidates:
        problem = browser_problem(art)
        if problem is None:
            return art
        problems.append(problem)
    raise EdgekdError(f"bundle {manifest.name} has no artifact the browser can run: " + "; ".join(problems), MAKE_ONE)


def check_app_formats(formats: Sequence[str]) -> None:
    """Refuse ``edgekd build --app`` before training when no format it converts to can run in the browser."""
    if not any(f in APP_FORMATS for f in formats):
        raise EdgekdError(f"--app needs a TFLite artifact with float inputs and outputs, and the formats are {', '.join(formats)}",
                          "add tflite-fp32 to --formats (e.g. --formats tflite-int8,tflite-fp32)")


def litertjs_root() -> Path:
    """``node_modules/@litertjs`` of the pinned web/ package (``$EDGEKD_LITERTJS_DIR`` overrides)."""
    explicit = os.environ.get("EDGEKD_LITERTJS_DIR")
    root = Path(explicit) if explicit else Path(__file__).resolve().parents[2] / "web" / "node_modules" / "@litertjs"
    package = root / "core" / "package.json"
    try:
        version = json.loads(package.read_text()).get("version")
    except (OSError, ValueError):
        version = None
    if version != LITERTJS_VERSION:
        found = f"version {version}" if version else "nothing"
        raise EdgekdError(f"the app needs @litertjs/core {LITERTJS_VERSION} in {root}, found {found}",
                          "run `make install` (it runs `npm ci` in web/), or set EDGEKD_LITERTJS_DIR to a node_modules/@litertjs folder")
    return root


def pixel_range(x: np.ndarray) -> List[float]:
    """The raw values a black and a white pixel stand for: camera and file pixels (0..255) are mapped onto the
    range of the bundle's own raw inputs (0..16 for scikit-learn's digits, 0..255 for uint8 images)."""
    if x.dtype == np.uint8:
        return [0.0, 255.0]
    lo, hi = float(np.min(x)), float(np.max(x))
    return [min(lo, 0.0), hi if hi > lo else lo + 1.0]


def image_layout(shape: Sequence[int]) -> Optional[Dict[str, int]]:
    """Height, width, channels of an NHWC (or NHW) image input the camera can feed; None otherwise."""
    dims = list(shape[1:])
    if len(dims) == 2:
        dims.append(1)
    if len(dims) == 3 and dims[2] in (1, 3) and dims[0] >= 2 and dims[1] >= 2:
        return {"height": int(dims[0]), "width": int(dims[1]), "channels": int(dims[2])}
    return None


def _eval_slice(bundle: Bundle, sample_shape: Sequence[int], classes: int) -> Dict[str, Any]:
    x, y, host = bundle.load_eval()
    x = np.asarray(x)
    raw_dtype = "uint8" if x.dtype == np.uint8 else "float32"
    x = x.astype(raw_dtype).reshape((len(x),) + tuple(int(v) for v in sample_shape))
    per_sample = max(1, x[0].nbytes + 4 * classes if len(x) else 1)
    n = int(min(len(x), max(1, EVAL_BYTES // per_sample)))
    blob = np.ascontiguousarray(x[:n]).tobytes()
    if host is not None:
        blob += np.ascontiguousarray(np.asarray(host[:n], np.float32).reshape(n, -1)).astype("<f4").tobytes()
    meta = {"count": n, "raw_dtype": raw_dtype, "host_offset": int(x[:n].nbytes) if host is not None else None, "classes": classes,
            "labels": [int(v) for v in np.asarray(y[:n]).reshape(-1)] if y is not None else None,
            "pixel_range": pixel_range(x), "mean": float(np.mean(x[:n])) if n else 0.0}
    return {"meta": meta, "blob": blob}


def _host_expected(manifest: Manifest, art: Artifact) -> Dict[str, Any]:
    # The same fields edgekd_runtime's profile() reports, so that `edgekd reports show` compares phone runs alike.
    out: Dict[str, Any] = {"profile": manifest.profile.get("name")}
    out.update({k: art.host_metrics[k] for k in ("accuracy", "agreement_with_keras") if k in art.host_metrics})
    usage = (manifest.profile.get("fit") or {}).get("usage") or {}
    if "latency_ms" in usage:
        out["latency_ms_estimate"] = usage["latency_ms"].get("used")
    return out


def _config(bundle: Bundle, art: Artifact, model_name: str, evaluation: Dict[str, Any]) -> Dict[str, Any]:
    m = bundle.manifest
    pre = m.preprocessing
    return {
        "producer": f"edgekd {__version__}",
        "app_version": None,  # filled once every file is written (the hash of them all)
        "name": m.name,
        "labels": list(m.labels),
        "model": {"file": model_name, "format": art.format, "bytes": art.bytes, "input": _spec(art.input), "output": _spec(art.output)},
        "image": image_layout(art.input.shape),
        "preprocessing": {"scale": pre.scale, "offset": pre.offset, "mean": pre.mean, "std": pre.std, "describe": pre.describe()},
        "eval": evaluation,
        "report": {
            "bundle": m.name,
            "manifest_sha256": sha256_file(bundle.path(MANIFEST_NAME)),
            "signature": bundle.signature,
            "artifact": art.path,
            "format": art.format,
            "host_expected": _host_expected(m, art),
            "student": {k: m.student[k] for k in ("spec", "params", "macs") if k in m.student},
            "runtime_version": __version__,
        },
        "litertjs": LITERTJS_VERSION,
    }


def _spec(spec) -> Dict[str, Any]:
    return {"shape": list(spec.shape), "dtype": spec.dtype, "scale": spec.scale, "zero_point": spec.zero_point}


def _icon(size: int) -> bytes:
    """A plain generated icon (a rounded square with a 3x3 grid of cells, a nod to a tiny network's input)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle([0, 0, size - 1, size - 1], radius=size // 6, fill=(21, 101, 192, 255))
    cell, gap = size // 6, size // 24
    start = (size - 3 * cell - 2 * gap) // 2
    for i in range(3):
        for j in range(3):
            x0, y0 = start + j * (cell + gap), start + i * (cell + gap)
            shade = 255 if (i + j) % 2 == 0 else 170
            draw.rectangle([x0, y0, x0 + cell, y0 + cell], fill=(shade, shade, 255, 255))
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def _web_manifest(name: str) -> str:
    return json.dumps({
        "name": f"edgekd: {name}",
        "short_name": name[:12],
        "start_url": "./index.html",
        "scope": "./",
        "display": "standalone",
        "background_color": "#ffffff",
        "theme_color": "#1565c0",
        "icons": [{"src": f"icons/icon-{s}.png", "sizes": f"{s}x{s}", "type": "image/png", "purpose": "any"} for s in ICON_SIZES],
    }, indent=2)


def check_out(out: Path, force: bool) -> None:
    if not os.path.lexists(out):
        return
    if out.is_symlink() or not out.is_dir():
        raise EdgekdError(f"{out} exists and is not a folder", "choose another --out")
    entries = list(out.iterdir())
    if not entries:
        return
    if not force:
        raise EdgekdError(f"{out} already exists", "choose another --out or pass --force to replace it")
    try:
        producer = json.loads((out / APP_CONFIG).read_text()).get("producer", "")
    except (OSError, ValueError, AttributeError):
        producer = ""
    if not str(producer).startswith("edgekd "):
        raise EdgekdError(f"--force replaces only an app written by edgekd app, but {out} holds other files; nothing was deleted",
                          "move those files away or choose another --out")


def write_app(bundle: Union[str, Path], out: Union[str, Path], artifact: Optional[str] = None, force: bool = False,
              public_key: Optional[str] = None) -> AppResult:
    """Write the phone app of ``bundle`` (folder or .zip, verified as a device would) to ``out``.

    ``artifact``: the format to run (default: the first one LiteRT.js can run). The folder appears complete or
    not at all: it is written beside ``out`` and renamed into place.
    """
    out = Path(out)
    check_out(out, force)
    litert = litertjs_root()
    with Bundle.open(str(bundle), public_key=public_key) as opened:
        art = browser_artifact(opened.manifest, artifact)
        evaluation = _eval_slice(opened, art.input.shape[1:], int(np.prod(art.output.shape[1:])))
        model_name = "model/" + Path(art.path).name
        # Read now: a .zip bundle is unpacked to a temporary folder that closing removes.
        files: Dict[str, Union[bytes, Path]] = {model_name: Path(opened.checked_path(art.path)).read_bytes(), "eval.bin": evaluation["blob"]}
        config = _config(opened, art, model_name, evaluation["meta"])
    for src in sorted(STATIC.iterdir()):
        if src.is_file() and src.name != "sw.js":
            files[src.name] = src
    files["vendor/litertjs/core/index.js"] = litert / "core" / "dist" / "index.js"
    files["vendor/litertjs/wasm-utils/index.js"] = litert / "wasm-utils" / "dist" / "index.js"
    for build in WASM_BUILDS:
        for suffix in (".js", ".wasm"):
            files[f"vendor/litertjs/wasm/{build}{suffix}"] = litert / "core" / "wasm" / (build + suffix)
    files["app.webmanifest"] = _web_manifest(config["name"]).encode()
    for size in ICON_SIZES + (180,):
        files[f"icons/icon-{size}.png"] = _icon(size)
    digest = hashlib.sha256()
    for name in sorted(files):
        data = files[name]
        digest.update(name.encode() + b"\0" + (data if isinstance(data, bytes) else data.read_bytes()))
    config["app_version"] = digest.hexdigest()[:16]
    files[APP_CONFIG] = json.dumps(config, indent=2).encode()
    # The service worker caches every file on install but the wasm builds: the page caches the one it loads.
    precache = ["./"] + sorted(n for n in files if not n.startswith("vendor/litertjs/wasm/"))
    worker = f"const VERSION = {json.dumps(config['app_version'])};\nconst PRECACHE = {json.dumps(precache)};\n"
    files["sw.js"] = (worker + (STATIC / "sw.js").read_text()).encode()

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        total = 0
        for name, data in files.items():
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, bytes):
                target.write_bytes(data)
            else:
                shutil.copyfile(data, target)
            total += target.stat().st_size
        os.chmod(staging, 0o755)
        if os.path.lexists(out):
            shutil.rmtree(out)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return AppResult(out, art, sorted(files), total, evaluation["meta"]["count"])
