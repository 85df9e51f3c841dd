"""Frames for the device demos: the camera (picamera2, OpenCV/V4L2, a GStreamer pipeline), a video file or a
folder of images, tried in the order given; and the one function that fits any frame to the model's input.

Needs numpy only. OpenCV reads cameras, pipelines and videos and PIL decodes PNG/JPEG when installed; .npy,
.pgm and .ppm images decode with numpy alone, and frames are resized with numpy when neither OpenCV nor PIL is
there. Valid Python 3.6 (the Jetson Nano's JetPack 4.6).
"""
import os
import sys

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".npy")

# The Jetson CSI camera (IMX219 and the like) through nvarguscamerasrc, scaled on the ISP, handed to OpenCV as BGR.
CSI_PIPELINE = (
    "nvarguscamerasrc sensor-id=0 ! video/x-raw(memory:NVMM), width=1280, height=720, framerate=30/1 ! "
    "nvvidconv flip-method=0 ! video/x-raw, width=640, height=360, format=BGRx ! "
    "videoconvert ! video/x-raw, format=BGR ! appsink drop=true max-buffers=1"
)


class SourceUnavailable(Exception):
    """This source cannot give frames here (missing, busy, or its library is not installed)."""


class FrameError(ValueError):
    """A source spec, or a model input, that frames cannot serve (a user's fix, not a bug)."""


def _cv2():
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def _bgr_to_rgb(frame):
    return frame[..., ::-1] if frame.ndim == 3 and frame.shape[-1] == 3 else frame


class Picamera2Source(object):
    """The Raspberry Pi camera through picamera2 (libcamera)."""

    def __init__(self, size=(640, 480)):
        self.name, self.size, self.camera = "picamera2", size, None

    def open(self):
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise SourceUnavailable("picamera2 is not installed (sudo apt install python3-picamera2)")
        try:
            camera = Picamera2()
            camera.configure(camera.create_preview_configuration(main={"format": "RGB888", "size": tuple(self.size)}))
            camera.start()
        except Exception as exc:  # libcamera: no camera attached, or another process holds it
            raise SourceUnavailable("no camera, or it is busy (%s)" % _first_line(exc))
        self.camera = camera

    def read(self):
        # picamera2's "RGB888" is laid out B, G, R in memory.
        return _bgr_to_rgb(self.camera.capture_array("main"))

    def close(self):
        if self.camera is not None:
            self.camera.stop()
            self.camera.close()


class OpenCVSource(object):
    """A V4L2 camera (/dev/videoN), a GStreamer pipeline or a video file, through OpenCV."""

    def __init__(self, name, target, backend=None, loop=False):
        self.name, self.target, self.backend, self.loop, self.capture, self._first = name, target, backend, loop, None, None

    def open(self):
        cv2 = _cv2()
        if cv2 is None:
            raise SourceUnavailable("OpenCV is not installed (pip install opencv-python-headless, or apt install python3-opencv)")
        if isinstance(self.target, str) and self.backend is None and not os.path.exists(self.target):
            raise SourceUnavailable("no such video file")
        backend = getattr(cv2, self.backend, None) if self.backend else None
        capture = cv2.VideoCapture(self.target, backend) if backend is not None else cv2.VideoCapture(self.target)
        if not capture.isOpened():
            capture.release()
            raise SourceUnavailable("OpenCV could not open it (missing, or busy in another process)")
        ok, frame = capture.read()
        if not ok:
            capture.release()
            raise SourceUnavailable("it opened but gives no frames (busy, or unsupported format)")
        self.capture, self._first = capture, frame

    def read(self):
        if self._first is not None:
            frame, self._first = self._first, None
            return _bgr_to_rgb(frame)
        ok, frame = self.capture.read()
        if not ok and self.loop and self.backend is None:
            self.capture.set(_cv2().CAP_PROP_POS_FRAMES, 0)
            ok, frame = self.capture.read()
        return _bgr_to_rgb(frame) if ok else None

    def close(self):
        if self.capture is not None:
            self.capture.release()


class ImageFolderSource(object):
    """Every image of a folder in name order (once, or round and round with ``loop``)."""

    def __init__(self, folder, loop=False):
        self.name, self.folder, self.loop, self.files, self.index, self.skipped = "images:" + folder, folder, loop, [], 0, []

    def open(self):
        if not os.path.isdir(self.folder):
            raise SourceUnavailable("no such folder")
        self.files = sorted(os.path.join(self.folder, n) for n in os.listdir(self.folder) if n.lower().endswith(IMAGE_EXTENSIONS))
        if not self.files:
            raise SourceUnavailable("it holds no images (%s)" % ", ".join(IMAGE_EXTENSIONS))

    def read(self):
        while self.files:
            if self.index >= len(self.files):
                if not self.loop:
                    return None
                self.index = 0
            path = self.files[self.index]
            self.index += 1
            try:
                return read_image(path)
            except (ValueError, OSError) as exc:
                # One bad file must not stop a camera loop: say which, and drop it from the rotation.
                sys.stderr.write("frames: skipping %s: %s\n" % (path, _first_line(exc)))
                self.skipped.append(path)
                self.index -= 1
                del self.files[self.index]
        return None

    def close(self):
        pass


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def parse_source(spec, loop=False):
    """One source from its spec: picamera2 | v4l2[:N] | csi | gst:PIPELINE | video:PATH | images:DIR."""
    kind, _, arg = spec.partition(":")
    if kind == "picamera2":
        return Picamera2Source()
    if kind == "v4l2":
        return OpenCVSource("v4l2:" + (arg or "0"), int(arg or 0), "CAP_V4L2")
    if kind == "csi":
        return OpenCVSource("csi", CSI_PIPELINE, "CAP_GSTREAMER")
    if kind == "gst" and arg:
        return OpenCVSource("gst", arg, "CAP_GSTREAMER")
    if kind == "video" and arg:
        return OpenCVSource("video:" + arg, arg, loop=loop)
    if kind == "images" and arg:
        return ImageFolderSource(arg, loop=loop)
    raise FrameError("unknown frame source %r: use picamera2, v4l2[:N], csi, gst:PIPELINE, video:PATH or images:DIR" % spec)


def open_first(specs, loop=False, say=None):
    """Open the first of ``specs`` that gives frames; each one skipped is reported through ``say`` with its reason.
    Raises SourceUnavailable listing every reason when none does."""
    say = say or (lambda line: sys.stderr.write(line + "\n"))
    reasons = []
    for spec in specs:
        source = parse_source(spec, loop=loop)
        try:
            source.open()
        except SourceUnavailable as exc:
            reasons.append("%s: %s" % (source.name, exc))
            say("frames: %s unavailable (%s); trying the next source" % (source.name, exc))
            continue
        return source
    raise SourceUnavailable("no frame source works here (%s)" % "; ".join(reasons))


# --- decoding ---------------------------------------------------------------------------------------------------


def _netpbm(data):
    """Binary (P5/P6) or text (P2/P3) PGM/PPM, with numpy alone."""
    magic = data[:2]
    if magic not in (b"P2", b"P3", b"P5", b"P6"):
        raise ValueError("not a PGM/PPM file")
    fields, pos = [], 2
    while len(fields) < 3:
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos)
            continue
        end = pos
        while end < len(data) and not data[end:end + 1].isspace():
            end += 1
        fields.append(int(data[pos:end]))
        pos = end
    width, height, maxval = fields
    channels = 3 if magic in (b"P3", b"P6") else 1
    if magic in (b"P2", b"P3"):
        values = np.array(data[pos:].split()[: width * height * channels], dtype=np.int64)
    else:
        dtype = np.dtype(">u2") if maxval > 255 else np.dtype(np.uint8)
        values = np.frombuffer(data[pos + 1:], dtype=dtype, count=width * height * channels)
    image = values.reshape((height, width, channels) if channels == 3 else (height, width))
    return image.astype(np.uint16 if maxval > 255 else np.uint8)


def read_image(path):
    """An image file as a numpy array: (H, W) grayscale or (H, W, 3) RGB, in the file's own pixel values."""
    lower = path.lower()
    if lower.endswith(".npy"):
        return np.load(path, allow_pickle=False)
    if lower.endswith((".pgm", ".ppm")):
        with open(path, "rb") as handle:
            return _netpbm(handle.read())
    try:
        from PIL import Image
    except ImportError:
        Image = None
    if Image is not None:
        with Image.open(path) as img:
            if img.mode not in ("L", "RGB"):
                img = img.convert("RGB")
            return np.asarray(img)
    cv2 = _cv2()
    if cv2 is not None:
        image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ValueError("OpenCV cannot decode it")
        return _bgr_to_rgb(image[..., :3]) if image.ndim == 3 else image
    raise ValueError("decoding %s needs PIL or OpenCV (pip install pillow); .npy, .pgm and .ppm need neither" % os.path.splitext(path)[1])


# --- fitting a frame to the model ---------------------------------------------------------------------------------


def resize_numpy(image, height, width):
    """Resize (H, W) or (H, W, C) with numpy alone: block means for a whole-number shrink, else bilinear (pixel
    centres aligned, as OpenCV's INTER_LINEAR)."""
    src = np.asarray(image, dtype=np.float32)
    h, w = src.shape[:2]
    if h % height == 0 and w % width == 0 and h >= height and w >= width:
        # A whole-number shrink: each output pixel is the mean of its block (what INTER_AREA gives), no aliasing.
        fy, fx = h // height, w // width
        return src.reshape((height, fy, width, fx) + src.shape[2:]).mean(axis=(1, 3))
    ys = np.clip((np.arange(height, dtype=np.float32) + 0.5) * (h / float(height)) - 0.5, 0, h - 1)
    xs = np.clip((np.arange(width, dtype=np.float32) + 0.5) * (w / float(width)) - 0.5, 0, w - 1)
    y0, x0 = np.floor(ys).astype(np.int64), np.floor(xs).astype(np.int64)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = (ys - y0)[:, None], (xs - x0)[None, :]
    if src.ndim == 3:
        wy, wx = wy[..., None], wx[..., None]
    top = src[y0][:, x0] * (1 - wx) + src[y0][:, x1] * wx
    bottom = src[y1][:, x0] * (1 - wx) + src[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy


def resize(image, height, width):
    """(resized float32 image, method): OpenCV's INTER_AREA when installed, else numpy bilinear."""
    if image.shape[:2] == (height, width):
        return np.asarray(image, dtype=np.float32), "none"
    cv2 = _cv2()
    if cv2 is not None:
        out = cv2.resize(np.asarray(image, dtype=np.float32), (width, height), interpolation=cv2.INTER_AREA)
        return (out[..., None] if image.ndim == 3 and out.ndim == 2 else out), "opencv-area"
    return resize_numpy(image, height, width), "numpy"


def fit_frame(frame, sample_shape, raw_dtype):
    """A frame of any size and channel count -> one raw sample of ``sample_shape`` (H, W, C) in ``raw_dtype``,
    the manifest's raw input; the runtime then applies the manifest's preprocessing to it. Returns (sample, resize method)."""
    frame = np.asarray(frame)
    if len(sample_shape) != 3:
        raise FrameError("the model's input %s is not an image (H, W, C)" % (tuple(sample_shape),))
    height, width, channels = sample_shape
    if frame.ndim == 3 and frame.shape[-1] == 4:
        frame = frame[..., :3]  # RGBA/XRGB: the alpha or padding byte carries no image
    if frame.ndim == 3 and frame.shape[-1] == 1:
        frame = frame[..., 0]
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[-1] != 3):
        raise FrameError("a frame of shape %s is not an image (H, W), (H, W, 3) or (H, W, 4)" % (frame.shape,))
    image, method = resize(frame, height, width)
    if channels == 1 and image.ndim == 3:
        image = image @ np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601 luma, as OpenCV's RGB2GRAY
    if image.ndim == 2:
        image = image[..., None]
    if channels == 3 and image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    if image.shape[-1] != channels:
        raise FrameError("the model takes %d channels; frames have %d" % (channels, image.shape[-1]))
    dtype = np.dtype(raw_dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        image = np.clip(np.round(image), info.min, info.max)
    return image.astype(dtype), method
