// Where samples come from: camera frames, picked files (images, or .npy for non-image inputs), the drawing pad.
// Every image source goes through toRaw(): centre crop to the model's aspect, resize to its input, grey when it
// takes one channel, pixels mapped onto the raw range of the bundle's own data (app.json eval.pixel_range).
import { product } from './engine.js';

export function cropRect(sw, sh, width, height) {
  const aspect = width / height;
  let cw = sw, ch = sw / aspect;
  if (ch > sh) { ch = sh; cw = sh * aspect; }
  return { x: (sw - cw) / 2, y: (sh - ch) / 2, w: cw, h: ch };
}

// source: an image, video or canvas of size sw x sh -> the raw sample (Float32Array, H*W*C, NHWC order).
export function toRaw(source, sw, sh, config, invert) {
  const { height, width, channels } = config.image;
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  const r = cropRect(sw, sh, width, height);
  ctx.drawImage(source, r.x, r.y, r.w, r.h, 0, 0, width, height);
  const pixels = ctx.getImageData(0, 0, width, height).data;
  const [lo, hi] = config.eval.pixel_range;
  const raw = new Float32Array(width * height * channels);
  for (let i = 0; i < width * height; i++) {
    const rgb = [pixels[4 * i], pixels[4 * i + 1], pixels[4 * i + 2]];
    // ITU-R 601 luma, as PIL's convert("L") computes grey.
    const values = channels === 1 ? [0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]] : rgb;
    for (let c = 0; c < channels; c++) {
      const v = invert ? 255 - values[c] : values[c];
      raw[i * channels + c] = lo + (v / 255) * (hi - lo);
    }
  }
  return raw;
}

// Draw a raw sample, scaled up, so the user sees what the model was given.
export function showRaw(canvas, raw, config) {
  const { height, width, channels } = config.image;
  const [lo, hi] = config.eval.pixel_range;
  const small = document.createElement('canvas');
  small.width = width;
  small.height = height;
  const ctx = small.getContext('2d');
  const img = ctx.createImageData(width, height);
  for (let i = 0; i < width * height; i++) {
    for (let c = 0; c < 3; c++) {
      const v = raw[i * channels + (channels === 1 ? 0 : c)];
      img.data[4 * i + c] = Math.round(255 * (v - lo) / (hi - lo));
    }
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  const big = canvas.getContext('2d');
  big.imageSmoothingEnabled = false;
  big.drawImage(small, 0, 0, canvas.width, canvas.height);
}

// A .npy file (NumPy's format 1.0/2.0/3.0, little-endian, C order) holding one sample (or a batch of one).
export function parseNpy(buffer, config) {
  const bytes = new Uint8Array(buffer);
  const magic = String.fromCharCode(...bytes.slice(0, 6));
  if (magic !== '\x93NUMPY') throw new Error('not a .npy file (no NumPy magic)');
  const major = bytes[6];
  const view = new DataView(buffer);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(bytes.slice(start, start + headerLength));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*True/.test(header);
  const shape = (/'shape':\s*\(([^)]*)\)/.exec(header)?.[1] || '').split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  if (fortran) throw new Error('.npy in Fortran order: save it with np.save on a C-ordered array');
  const types = { '<f4': Float32Array, '<f8': Float64Array, '|u1': Uint8Array, '<i4': Int32Array, '<i8': BigInt64Array, '|i1': Int8Array };
  const Type = types[descr];
  if (!Type) throw new Error(`.npy dtype ${descr} is not supported (float32, float64, uint8, int8, int32, int64)`);
  const offset = start + headerLength;
  const count = product(shape);
  const data = new Type(buffer.slice(offset, offset + count * Type.BYTES_PER_ELEMENT));
  const want = product(config.model.input.shape);
  if (count !== want) {
    throw new Error(`.npy holds shape (${shape.join(', ')}), ${count} values; the model takes ${config.model.input.shape.join('x')} (${want} values)`);
  }
  return Float32Array.from(data, Number);
}

export class Camera {
  constructor(video) {
    this.video = video;
    this.stream = null;
  }

  // Why the camera cannot start here, or null.
  static unavailableReason() {
    if (!window.isSecureContext) {
      return `the camera needs HTTPS or localhost, and this page is ${location.origin}: serve it with edgekd app serve --cert/--key (see the README)`;
    }
    if (!navigator.mediaDevices?.getUserMedia) return 'this browser has no camera API (getUserMedia)';
    return null;
  }

  async start() {
    // The rear camera on phones; any camera elsewhere (ideal, not exact: a laptop has only a front one).
    this.stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: { ideal: 'environment' } }, audio: false });
    this.video.srcObject = this.stream;
    await this.video.play();
  }

  stop() {
    for (const track of this.stream?.getTracks() || []) track.stop();
    this.stream = null;
    this.video.srcObject = null;
  }

  get running() {
    return this.stream !== null;
  }
}

export class DrawingPad {
  // ink: 'light' (light strokes on dark, like scikit-learn's digits) or 'dark'.
  constructor(canvas, config, onStroke) {
    this.canvas = canvas;
    this.ink = config.eval.mean < (config.eval.pixel_range[0] + config.eval.pixel_range[1]) / 2 ? 'light' : 'dark';
    this.ctx = canvas.getContext('2d', { willReadFrequently: true });
    this.line = Math.max(4, (canvas.width / config.image.width) * 1.3);
    this.clear();
    let last = null;
    const point = (e) => {
      const r = canvas.getBoundingClientRect();
      return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
    };
    canvas.addEventListener('pointerdown', (e) => { canvas.setPointerCapture(e.pointerId); last = point(e); this.dot(last); });
    canvas.addEventListener('pointermove', (e) => {
      if (!last) return;
      const p = point(e);
      this.segment(last, p);
      last = p;
    });
    const end = () => { if (last) { last = null; onStroke(); } };
    canvas.addEventListener('pointerup', end);
    canvas.addEventListener('pointercancel', end);
  }

  clear() {
    this.ctx.fillStyle = this.ink === 'light' ? '#000' : '#fff';
    this.ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
  }

  dot(p) {
    this.ctx.fillStyle = this.ink === 'light' ? '#fff' : '#000';
    this.ctx.beginPath();
    this.ctx.arc(p[0], p[1], this.line / 2, 0, 2 * Math.PI);
    this.ctx.fill();
  }

  segment(a, b) {
    this.ctx.strokeStyle = this.ink === 'light' ? '#fff' : '#000';
    this.ctx.lineWidth = this.line;
    this.ctx.lineCap = 'round';
    this.ctx.beginPath();
    this.ctx.moveTo(a[0], a[1]);
    this.ctx.lineTo(b[0], b[1]);
    this.ctx.stroke();
  }
}
