// The model on LiteRT.js: raw input (as the bundle's eval set stores it) -> preprocessing -> one run -> float scores.
// Preprocessing follows edgekd_runtime's Preprocessing.apply step by step in float32 (Math.fround), so the page
// feeds the model the very tensor the Python runtime would.
import { loadLiteRt, loadAndCompile, Tensor, supportsFeature, isWebGPUSupported } from '@litertjs/core';

const f32 = Math.fround;

export async function loadConfig() {
  const response = await fetch('app.json');
  if (!response.ok) throw new Error(`app.json: HTTP ${response.status}`);
  return response.json();
}

export function product(values) {
  return values.reduce((a, b) => a * b, 1);
}

// numpy.round: halves go to the even neighbour.
function roundHalfEven(v) {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function preprocess(raw, config) {
  const p = config.preprocessing;
  const spec = config.model.input;
  const n = product(spec.shape);
  if (raw.length !== n) throw new Error(`input has ${raw.length} values, the model takes ${n} (${spec.shape.join('x')})`);
  const channels = spec.shape[spec.shape.length - 1];
  const scale = f32(p.scale), offset = f32(p.offset);
  const mean = (p.mean || [0]).map(f32), std = (p.std || [1]).map(f32);
  const normalise = p.mean != null || p.std != null;
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let v = f32(f32(f32(raw[i]) * scale) + offset);
    if (normalise) {
      const c = i % channels;
      v = f32(f32(v - mean[mean.length === 1 ? 0 : c]) / std[std.length === 1 ? 0 : c]);
    }
    y[i] = v;
  }
  if (spec.dtype === 'float32') return y;
  const lo = spec.dtype === 'uint8' ? 0 : -2147483648, hi = spec.dtype === 'uint8' ? 255 : 2147483647;
  const q = spec.dtype === 'uint8' ? new Uint8Array(n) : new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const v = spec.scale ? roundHalfEven(f32(y[i] / f32(spec.scale))) + spec.zero_point : roundHalfEven(y[i]);
    q[i] = Math.min(hi, Math.max(lo, v));
  }
  return q;
}

function dequantize(data, spec) {
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = spec.scale ? f32(f32(data[i] - spec.zero_point) * f32(spec.scale)) : data[i];
  return out;
}

// numpy.percentile's default (linear interpolation between closest ranks).
export function percentile(sorted, q) {
  if (!sorted.length) return null;
  const pos = (sorted.length - 1) * q / 100;
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export function latencyStats(ms) {
  const sorted = [...ms].sort((a, b) => a - b);
  const mean = ms.reduce((a, b) => a + b, 0) / ms.length;
  const stdev = Math.sqrt(ms.reduce((a, b) => a + (b - mean) * (b - mean), 0) / ms.length);
  return {
    p50_ms: percentile(sorted, 50), p90_ms: percentile(sorted, 90), p99_ms: percentile(sorted, 99),
    mean_ms: mean, stdev_ms: stdev, throughput_per_s: mean > 0 ? 1000 / mean : 0, runs: ms.length,
  };
}

export function softmax(scores) {
  const m = Math.max(...scores);
  const e = Array.from(scores, (v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

export function topK(scores, labels, k = 3) {
  const probs = softmax(scores);
  return Array.from(scores.keys()).sort((a, b) => scores[b] - scores[a]).slice(0, k)
    .map((i) => ({ index: i, label: labels[i] ?? String(i), score: scores[i], probability: probs[i] }));
}

export class Engine {
  constructor(config) {
    this.config = config;
    this.latencies = [];  // every run of this session, in ms
    this.lastInput = null;
    this.lastScores = null;
  }

  // accelerator: 'wasm', 'webgpu' or 'auto' (WebGPU where the browser has it, else wasm).
  async load(accelerator = 'auto') {
    const started = performance.now();
    const relaxed = await supportsFeature('relaxedSimd');
    this.wasmBuild = relaxed ? 'litert_wasm_internal' : 'litert_wasm_compat_internal';
    this.wasmUrls = ['.js', '.wasm'].map((s) => new URL(`vendor/litertjs/wasm/${this.wasmBuild}${s}`, location.href).href);
    await loadLiteRt(this.wasmUrls[0]);
    // navigator.gpu alone is not enough: headless or blocklisted GPUs expose the API with no adapter behind it.
    const adapter = accelerator !== 'wasm' && isWebGPUSupported() ? await navigator.gpu.requestAdapter().catch(() => null) : null;
    if (accelerator === 'auto' && !adapter) this.fallback = 'no WebGPU adapter in this browser';
    this.requested = accelerator === 'auto' ? (adapter ? 'webgpu' : 'wasm') : accelerator;
    const modelUrl = new URL(this.config.model.file, location.href).href;
    try {
      this.model = await loadAndCompile(modelUrl, { accelerator: this.requested });
    } catch (error) {
      if (this.requested === 'wasm') throw error;
      this.fallback = `WebGPU failed (${error.message}); running on wasm`;
      this.model = await loadAndCompile(modelUrl, { accelerator: 'wasm' });
    }
    this.accelerator = this.model.options.accelerator;
    this.fullyAccelerated = this.model.isFullyAccelerated !== false;
    this.loadSeconds = (performance.now() - started) / 1000;
    return this;
  }

  describe() {
    return {
      engine: 'litert.js', version: this.config.litertjs, accelerator: this.accelerator, requested: this.requested,
      fully_accelerated: this.accelerator === 'wasm' ? true : this.fullyAccelerated, wasm_build: this.wasmBuild,
      fallback: this.fallback || null,
    };
  }

  // One raw sample in (Float32Array/Uint8Array of the sample's values), float scores out; the run is timed.
  async classify(raw) {
    const input = preprocess(raw, this.config);
    const tensor = new Tensor(input, this.config.model.input.shape);
    const started = performance.now();
    let outputs;
    let data;
    try {
      outputs = await this.model.run(tensor);
      let out = outputs[0];
      if (out.accelerator !== 'wasm') out = await out.moveTo('wasm');
      data = out.toTypedArray().slice();
      if (out !== outputs[0]) out.delete();
    } finally {
      tensor.delete();
      for (const t of outputs || []) { try { t.delete(); } catch (e) { /* already moved */ } }
    }
    const ms = performance.now() - started;
    this.latencies.push(ms);
    const scores = dequantize(data, this.config.model.output);
    this.lastInput = input;
    this.lastScores = scores;
    return { scores, ms, top: topK(scores, this.config.labels) };
  }
}
