// The page: wires the sources (camera, file, drawing pad) to the engine, shows top-3, latency and the session's
// p50/p90, checks the model on the bundle's eval set, and reports back. window.edgekdApp is the test hook: the
// browser tests drive the same functions the buttons call.
import { Engine, loadConfig, latencyStats } from './engine.js';
import { Camera, DrawingPad, parseNpy, showRaw, toRaw } from './inputs.js';
import { Outbox, makeReport, queued } from './outbox.js';

const $ = (id) => document.getElementById(id);
const KEYS = { collector: 'edgekd.collector', token: 'edgekd.token', device: 'edgekd.device', period: 'edgekd.period' };

function fail(message) {
  $('error').textContent = message;
  $('error').hidden = !message;
}

function fmt(ms) {
  return ms == null ? '-' : `${ms.toFixed(ms < 10 ? 2 : 1)} ms`;
}

async function registerWorker() {
  // Browsers hide navigator.serviceWorker on insecure pages: ask about the context first, it is the fixable cause.
  if (!window.isSecureContext) return 'offline use needs HTTPS or localhost (service workers are off on plain http)';
  if (!('serviceWorker' in navigator)) return 'no service worker in this browser: the app needs the network';
  await navigator.serviceWorker.register('sw.js');
  return null;
}

async function cacheWasm(engine, version) {
  // The service worker precaches the rest; the wasm build this browser uses is added here (see sw.js).
  if (!('caches' in window)) return;
  const cache = await caches.open(`edgekd-app-${version}`);
  for (const url of engine.wasmUrls) {
    if (!(await cache.match(url))) await cache.add(url);
  }
}

function settings() {
  return { collector: localStorage.getItem(KEYS.collector) || '', token: localStorage.getItem(KEYS.token) || '' };
}

function bindSettings() {
  if (!localStorage.getItem(KEYS.device)) {
    const id = Array.from(crypto.getRandomValues(new Uint8Array(4)), (b) => b.toString(16).padStart(2, '0')).join('');
    localStorage.setItem(KEYS.device, `browser-${id}`);
  }
  $('collector').value = localStorage.getItem(KEYS.collector) || '';
  $('device-id').value = localStorage.getItem(KEYS.device);
  $('period').value = localStorage.getItem(KEYS.period) || '0';
  // The token is never shown again once saved: the field says so instead.
  $('token').placeholder = localStorage.getItem(KEYS.token) ? 'saved on this device (type to replace)' : 'entered once, kept on this device';
  $('collector').addEventListener('change', () => localStorage.setItem(KEYS.collector, $('collector').value.trim()));
  $('device-id').addEventListener('change', () => localStorage.setItem(KEYS.device, $('device-id').value.trim() || localStorage.getItem(KEYS.device)));
  $('token').addEventListener('change', () => {
    if (!$('token').value) return;
    localStorage.setItem(KEYS.token, $('token').value.trim());
    $('token').value = '';
    $('token').placeholder = 'saved on this device (type to replace)';
  });
}

async function main() {
  const config = await loadConfig();
  document.title = `edgekd: ${config.name}`;
  $('title').textContent = config.name;
  $('agent').textContent = `user agent: ${navigator.userAgent}`;
  const workerNote = await registerWorker().catch((e) => `service worker failed: ${e.message}`);
  $('install-note').textContent = workerNote || 'works offline once loaded; add it to the home screen from the browser menu';

  const engine = await new Engine(config).load(new URLSearchParams(location.search).get('accelerator') || 'auto');
  const ran = engine.describe();
  $('backend').textContent = `${ran.accelerator}${ran.fully_accelerated ? '' : ' (partly on wasm)'} · LiteRT.js ${ran.version} (${ran.wasm_build})${ran.fallback ? ` · ${ran.fallback}` : ''}`;
  $('status').textContent = `${config.model.format} model, ${(config.model.bytes / 1024).toFixed(0)} KiB, loaded in ${(engine.loadSeconds * 1000).toFixed(0)} ms`;
  cacheWasm(engine, config.app_version).catch((e) => console.warn('wasm not cached for offline use', e));

  let lastReported = 0;
  let evaluation = null;
  const show = (result, raw) => {
    $('top').innerHTML = '';
    for (const t of result.top) {
      const li = document.createElement('li');
      li.innerHTML = `<b></b> <span class="muted"></span><span class="bar"></span>`;
      li.querySelector('b').textContent = t.label;
      li.querySelector('span').textContent = `${(100 * t.probability).toFixed(1)}% (score ${t.score.toFixed(3)})`;
      li.querySelector('.bar').style.width = `${Math.max(1, 100 * t.probability)}%`;
      $('top').appendChild(li);
    }
    const s = latencyStats(engine.latencies);
    $('latency').textContent = `this run ${fmt(result.ms)}`;
    $('stats').textContent = `p50 ${fmt(s.p50_ms)}, p90 ${fmt(s.p90_ms)} over ${s.runs} run(s)`;
    if (config.image && raw) showRaw($('preview'), raw, config);
  };
  const classify = async (raw) => {
    fail('');
    const result = await engine.classify(raw);
    show(result, raw);
    return result;
  };
  const classifyImage = (source, w, h) => classify(toRaw(source, w, h, config, $('invert').checked));

  // Sources. A model input the camera cannot feed (not an image) leaves the file picker, for .npy samples.
  const camera = new Camera($('video'));
  let cameraLoop = null;
  const why = config.image ? Camera.unavailableReason() : `the model's input (${config.model.input.shape.join('x')}) is not an image: pick a .npy file`;
  if (why) {
    $('camera-button').disabled = true;
    $('camera-note').textContent = why;
    $('camera-note').hidden = false;
  }
  $('camera-button').addEventListener('click', async () => {
    if (camera.running) {
      clearInterval(cameraLoop);
      camera.stop();
      $('video').hidden = true;
      $('camera-button').textContent = 'Camera';
      return;
    }
    try {
      await camera.start();
    } catch (e) {
      fail(`camera: ${e.name === 'NotAllowedError' ? 'permission denied' : e.message}`);
      return;
    }
    $('video').hidden = false;
    $('camera-button').textContent = 'Stop camera';
    let busy = false;
    cameraLoop = setInterval(async () => {
      const v = $('video');
      if (busy || !v.videoWidth) return;
      busy = true;
      try { await classifyImage(v, v.videoWidth, v.videoHeight); } catch (e) { fail(e.message); } finally { busy = false; }
    }, 250);
  });
  $('file').accept = config.image ? 'image/*,.npy' : '.npy';
  $('file').addEventListener('change', async () => {
    const file = $('file').files[0];
    if (!file) return;
    try {
      if (file.name.toLowerCase().endsWith('.npy')) {
        await classify(parseNpy(await file.arrayBuffer(), config));
      } else {
        if (!config.image) throw new Error(`the model's input is not an image: pick a .npy file of shape ${config.model.input.shape.join('x')}`);
        const bitmap = await createImageBitmap(file);
        await classifyImage(bitmap, bitmap.width, bitmap.height);
      }
    } catch (e) {
      fail(`${file.name}: ${e.message}`);
    }
  });
  if (config.image && config.image.channels === 1 && config.image.height <= 64 && config.image.width <= 64) {
    const pad = new DrawingPad($('pad'), config, () => classifyImage($('pad'), $('pad').width, $('pad').height).catch((e) => fail(e.message)));
    $('pad-box').hidden = false;
    $('pad-clear').addEventListener('click', () => pad.clear());
  }

  // The eval set: the bundle's raw samples through the same classify() the camera uses.
  const runEval = async () => {
    const meta = config.eval;
    const buffer = await (await fetch('eval.bin')).arrayBuffer();
    const size = config.model.input.shape.slice(1).reduce((a, b) => a * b, 1);
    const Raw = meta.raw_dtype === 'uint8' ? Uint8Array : Float32Array;
    const host = meta.host_offset != null ? new Float32Array(buffer, meta.host_offset, meta.count * meta.classes) : null;
    let agree = 0, correct = 0, maxDiff = 0;
    const perClass = {};
    const top1 = [];
    for (let i = 0; i < meta.count; i++) {
      const raw = new Raw(buffer, i * size * Raw.BYTES_PER_ELEMENT, size);
      const result = await engine.classify(raw);
      const { scores, top } = result;
      if (i === meta.count - 1) show(result, Float32Array.from(raw));
      const pred = top[0].index;
      top1.push(pred);
      if (host) {
        const ref = host.subarray(i * meta.classes, (i + 1) * meta.classes);
        let best = 0;
        for (let c = 0; c < meta.classes; c++) {
          if (ref[c] > ref[best]) best = c;
          maxDiff = Math.max(maxDiff, Math.abs(ref[c] - scores[c]));
        }
        agree += best === pred ? 1 : 0;
      }
      if (meta.labels) {
        const y = meta.labels[i];
        correct += y === pred ? 1 : 0;
        perClass[y] = perClass[y] || [0, 0];
        perClass[y][0] += y === pred ? 1 : 0;
        perClass[y][1] += 1;
      }
    }
    evaluation = {
      samples: meta.count, top1,
      accuracy: meta.labels ? correct / meta.count : null,
      per_class_accuracy: meta.labels ? Object.fromEntries(Object.entries(perClass).map(([k, [c, n]]) => [k, c / n])) : null,
      agreement_with_host: host ? agree / meta.count : null,
      max_abs_diff: host ? maxDiff : null,
    };
    const parts = [`${meta.count} samples`];
    if (evaluation.accuracy != null) parts.push(`accuracy ${(100 * evaluation.accuracy).toFixed(2)}% (host ${config.report.host_expected.accuracy != null ? (100 * config.report.host_expected.accuracy).toFixed(2) + '%' : '-'})`);
    if (host) parts.push(`top-1 agrees with the host on ${(100 * evaluation.agreement_with_host).toFixed(2)}%, max abs diff ${maxDiff.toExponential(2)}`);
    $('eval').textContent = parts.join(', ');
    const s = latencyStats(engine.latencies);
    $('latency').textContent = `last run ${fmt(engine.latencies[engine.latencies.length - 1])}`;
    $('stats').textContent = `p50 ${fmt(s.p50_ms)}, p90 ${fmt(s.p90_ms)} over ${s.runs} run(s)`;
    return evaluation;
  };
  $('eval-button').addEventListener('click', () => runEval().catch((e) => fail(`eval set: ${e.message}`)));

  // Reports.
  bindSettings();
  const outbox = new Outbox(settings, (state) => {
    $('queue').textContent = state.queued ? `${state.queued} queued` : '';
    if (state.last) {
      $('send-result').textContent = state.last.message;
      $('send-result').className = state.last.ok ? 'muted' : 'error';
    }
  });
  const sendReport = async () => {
    // A profile report needs latency: a session with no run yet measures the eval set first.
    if (!engine.latencies.length) await runEval();
    lastReported = engine.latencies.length;
    const report = makeReport(config, engine, localStorage.getItem(KEYS.device), evaluation);
    const outcome = await outbox.add(report);
    return { report_id: report.report_id, outcome };
  };
  $('send-button').addEventListener('click', () => sendReport().catch((e) => fail(`report: ${e.message}`)));
  $('period').addEventListener('change', () => localStorage.setItem(KEYS.period, $('period').value));
  setInterval(() => {
    const minutes = Number(localStorage.getItem(KEYS.period) || 0);
    if (minutes && engine.latencies.length > lastReported && Date.now() - (window.edgekdLastSend || 0) >= minutes * 60000) {
      window.edgekdLastSend = Date.now();
      sendReport().catch((e) => fail(`report: ${e.message}`));
    }
  }, 15000);
  window.addEventListener('online', () => outbox.flush());
  setInterval(() => outbox.flush(), 30000);
  outbox.flush();

  // ready_ms: from the page's navigation to a loaded model (the benchmark's first-load time).
  return { config, engine, classify, runEval, sendReport, outbox, queued, camera, ready_ms: performance.now() };
}

window.edgekdApp = main().catch((e) => {
  fail(`${e.message}`);
  $('status').textContent = 'failed to start';
  throw e;
});
