// Profile reports in the runtime's schema (edgekd_runtime/report.py, version 1), kept in IndexedDB until the
// collector acknowledges storing them. Like the runtime's spool: a report is queued first and sent from the queue,
// each resend carries the same body and Idempotency-Key (its report_id), so the collector stores it once.
import { latencyStats } from './engine.js';

const DB = 'edgekd-app';
const STORE = 'outbox';
export const ENDPOINT = '/v1/reports';

function randomHex(bytes) {
  // crypto.getRandomValues works on plain http too (randomUUID needs a secure context).
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, '0')).join('');
}

export function deviceInfo() {
  const uaData = navigator.userAgentData;
  return {
    kind: 'browser',
    user_agent: navigator.userAgent,
    platform: uaData?.platform || navigator.platform || null,
    mobile: uaData ? uaData.mobile : /Mobi|Android|iPhone|iPad/.test(navigator.userAgent),
    hardware_concurrency: navigator.hardwareConcurrency || null,
    device_memory_gb: navigator.deviceMemory || null,
    screen: `${screen.width}x${screen.height}@${window.devicePixelRatio}`,
    language: navigator.language || null,
  };
}

export function makeReport(config, engine, deviceId, evaluation) {
  const fixed = config.report;
  const report = {
    bundle: fixed.bundle,
    manifest_sha256: fixed.manifest_sha256,
    signature: fixed.signature,
    artifact: fixed.artifact,
    format: fixed.format,
    runtime: engine.describe(),
    load_seconds: { first: engine.loadSeconds },
    latency: latencyStats(engine.latencies),
    peak_memory_mb: performance.memory ? performance.memory.usedJSHeapSize / (1024 * 1024) : null,
    device: deviceInfo(),
    host_expected: fixed.host_expected,
    student: fixed.student,
    app_version: config.app_version,
  };
  if (evaluation) {
    report.eval_samples = evaluation.samples;
    if (evaluation.accuracy != null) {
      report.accuracy = evaluation.accuracy;
      report.per_class_accuracy = evaluation.per_class_accuracy;
    }
    if (evaluation.agreement_with_host != null) {
      report.agreement_with_host = evaluation.agreement_with_host;
      report.max_abs_diff_vs_host = evaluation.max_abs_diff;
    }
  }
  Object.assign(report, {
    schema: 'edgekd.report',
    schema_version: 1,
    report_id: randomHex(16),
    kind: 'profile',
    created: new Date().toISOString(),
    device_id: deviceId,
    runtime_version: fixed.runtime_version,
  });
  return report;
}

function openDb() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: 'report_id' });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function tx(mode, work) {
  const db = await openDb();
  try {
    return await new Promise((resolve, reject) => {
      const t = db.transaction(STORE, mode);
      const result = work(t.objectStore(STORE));
      t.oncomplete = () => resolve(result.result);
      t.onerror = () => reject(t.error);
    });
  } finally {
    db.close();
  }
}

export const queued = () => tx('readonly', (s) => s.getAll()).then((rows) => rows.sort((a, b) => a.queued - b.queued));
const remove = (id) => tx('readwrite', (s) => s.delete(id));

export function endpoint(url) {
  const base = url.replace(/\/+$/, '');
  return base.endsWith(ENDPOINT) ? base : base + ENDPOINT;
}

// Why the page cannot post to ``url`` at all, or null: said here, since a blocked fetch gives the page no reason.
export function collectorProblem(url) {
  if (!/^https?:\/\/[^/\s]+/i.test(url)) return `the collector URL ${url} is not an http:// or https:// address`;
  if (location.protocol === 'https:' && /^http:/i.test(url)) {
    return 'this page is https, and browsers block its requests to an http collector: serve the collector with --ssl-certfile/--ssl-keyfile';
  }
  return null;
}

export class Outbox {
  // settings(): {collector, token}; onChange(state) after every change of the queue or of the last outcome.
  constructor(settings, onChange) {
    this.settings = settings;
    this.onChange = onChange;
    this.flushing = null;
    this.last = null;  // {ok, message}
    this.attempts = [];  // report ids in the order they were posted (the test hook reads it)
  }

  async add(report) {
    // The exact bytes are kept: a resend must be identical, or the collector answers 409.
    await tx('readwrite', (s) => s.put({ report_id: report.report_id, body: JSON.stringify(report), queued: Date.now() }));
    return this.flush();
  }

  flush() {
    // One flush at a time; a second caller waits for the running one.
    if (!this.flushing) this.flushing = this._flush().finally(() => { this.flushing = null; });
    return this.flushing;
  }

  async _flush() {
    const { collector, token } = this.settings();
    const rows = await queued();
    if (!rows.length) return this._done(null);
    if (!collector || !token) return this._done({ ok: false, message: `${rows.length} report(s) queued: set the collector URL and token` });
    const problem = collectorProblem(collector);
    if (problem) return this._done({ ok: false, message: `${rows.length} report(s) queued: ${problem}` });
    let sent = 0;
    for (const row of rows) {
      let response;
      this.attempts.push(row.report_id);
      try {
        response = await fetch(endpoint(collector), {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}`, 'Idempotency-Key': row.report_id },
          body: row.body,
        });
      } catch (error) {
        // Offline, collector down, or refused by CORS: all look alike to a page. Keep the report.
        return this._done({ ok: false, message: `collector unreachable (${navigator.onLine ? 'down, or this origin is not allowed' : 'offline'}): ${rows.length - sent} report(s) queued` });
      }
      const answer = await response.json().catch(() => ({}));
      if (response.ok && answer.stored === true && answer.report_id === row.report_id) {
        await remove(row.report_id);
        sent += 1;
        continue;
      }
      const detail = typeof answer.detail === 'string' ? answer.detail : `HTTP ${response.status}`;
      if (response.status === 401 || response.status === 403) {
        return this._done({ ok: false, message: `the collector refused the token: ${detail}` });
      }
      if (response.status >= 400 && response.status < 500 && ![408, 429].includes(response.status)) {
        // Refused for good (not a valid report): resending cannot help, so it leaves the queue, said out loud.
        await remove(row.report_id);
        return this._done({ ok: false, message: `the collector rejected report ${row.report_id}: ${detail}` });
      }
      return this._done({ ok: false, message: `the collector is busy (${detail}): ${rows.length - sent} report(s) queued` });
    }
    return this._done({ ok: true, message: `${sent} report(s) stored by the collector` });
  }

  async _done(outcome) {
    if (outcome) this.last = outcome;
    const rows = await queued();
    this.onChange({ queued: rows.length, last: this.last });
    return this.last;
  }
}
