"""One self-contained HTML page: the comparison table and three plots (PNG, embedded as base64).

Plots: latency per device (the distribution of the reports' p50, with p99 and the profile's estimate),
accuracy per device against the host's, and drift (PSI of inputs and of confidence) over time.
"""
from __future__ import annotations

import base64
import datetime
import html
import io
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

from .analysis import ACCURACY_GAP_PTS, LATENCY_RATIO, Comparison, table
from .store import Store


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _label(row: Dict[str, Any]) -> str:
    return f"{row['device_id']}\n{row['bundle']} ({row['format'] or '-'})"


def _plots(rows: List[Dict[str, Any]], comparisons: List[Comparison]) -> List[tuple]:
    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    import matplotlib.pyplot as plt

    out = []
    profiles = [r for r in rows if r["kind"] == "profile" and r["p50_ms"] is not None]
    if profiles:
        groups: Dict[str, List[Dict[str, Any]]] = {}
        for r in profiles:
            groups.setdefault(_label(r), []).append(r)
        labels = sorted(groups)
        fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(labels)), 4))
        ax.boxplot([[r["p50_ms"] for r in groups[k]] for k in labels], showfliers=True)
        for i, k in enumerate(labels, start=1):
            p99 = [r["p99_ms"] for r in groups[k] if r["p99_ms"] is not None]
            ax.scatter([i] * len(p99), p99, marker="^", color="tab:red", s=14, label="p99" if i == 1 else None)
            est = [r["host_latency_ms"] for r in groups[k] if r["host_latency_ms"]]
            if est:
                ax.hlines(est[-1], i - 0.4, i + 0.4, colors="tab:green", linestyles="dashed", label="profile estimate" if i == 1 else None)
        ax.set_xticks(range(1, len(labels) + 1))
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_ylabel("latency (ms), p50 per report")
        ax.set_yscale("log")
        # Plain numbers on the log axis: "0.4" reads better than "4 x 10^-1" for a latency.
        plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
        ax.legend(fontsize=7)
        ax.set_title("Latency per device")
        out.append(("Latency per device", _png(fig)))
        plt.close(fig)
    acc = [c for c in comparisons if c.device_accuracy is not None]
    if acc:
        fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(acc)), 4))
        xs = range(len(acc))
        colors = ["tab:red" if c.accuracy_gap_pts is not None and c.accuracy_gap_pts < -ACCURACY_GAP_PTS else "tab:blue" for c in acc]
        ax.bar(xs, [100 * c.device_accuracy for c in acc], color=colors, label="device")
        ax.scatter(xs, [100 * c.host_accuracy if c.host_accuracy is not None else float("nan") for c in acc], color="black", marker="_", s=400, label="host")
        ax.set_xticks(list(xs))
        ax.set_xticklabels([f"{c.device_id}\n{c.bundle} ({c.format})" for c in acc], fontsize=7)
        low = min(100 * min(c.device_accuracy, c.host_accuracy or 1.0) for c in acc)
        ax.set_ylim(max(0.0, low - 5), 100.5)
        ax.set_ylabel("top-1 accuracy on the bundled eval set (%)")
        ax.legend(fontsize=7)
        ax.set_title("Accuracy per device (red: more than %.0f pt under the host)" % ACCURACY_GAP_PTS)
        out.append(("Accuracy per device", _png(fig)))
        plt.close(fig)
    drift = [r for r in rows if r["input_psi"] is not None]
    if drift:
        fig, ax = plt.subplots(figsize=(8, 4))
        series: Dict[str, List[Dict[str, Any]]] = {}
        for r in drift:
            series.setdefault(f"{r['device_id']} / {r['bundle']}", []).append(r)
        for name, rs in sorted(series.items()):
            when = [_when(r["created"]) for r in rs]
            ax.plot(when, [r["input_psi"] for r in rs], marker="o", label=f"{name}: inputs")
            ax.plot(when, [r["confidence_psi"] for r in rs], marker="x", linestyle="dotted", label=f"{name}: confidence")
        ax.axhline(0.25, color="tab:red", linewidth=0.8, linestyle="dashed")
        ax.axhline(0.1, color="tab:orange", linewidth=0.8, linestyle="dashed")
        ax.set_ylabel("PSI vs the bundle's reference")
        ax.set_title("Drift over time (dashed: 0.1 moderate, 0.25 shift)")
        ax.legend(fontsize=7)
        fig.autofmt_xdate()
        out.append(("Drift over time", _png(fig)))
        plt.close(fig)
    return out


def _when(created: str) -> datetime.datetime:
    try:
        return datetime.datetime.fromisoformat(created)
    except ValueError:
        return datetime.datetime.min


def render_html(store: Store, comparisons: List[Comparison], out: os.PathLike, bundle: Optional[str] = None, device: Optional[str] = None) -> Path:
    rows = store.query(bundle=bundle, device=device)
    cells = table(comparisons)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in cells[0])
    body = []
    for c, r in zip(comparisons, cells[1:]):
        cls = ' class="flag"' if c.flags else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(v)}</td>" for v in r) + "</tr>")
    figures = "".join(f'<h2>{html.escape(t)}</h2><img alt="{html.escape(t)}" src="data:image/png;base64,{data}">' for t, data in _plots(rows, comparisons))
    scope = ", ".join(f"{k} {html.escape(v)}" for k, v in (("bundle", bundle), ("device", device)) if v) or "all bundles and devices"
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>edgekd reports</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;font-size:13px}}
tr.flag td{{background:#fde2e2}}img{{max-width:100%}}</style></head><body>
<h1>edgekd: host-expected vs device-measured</h1>
<p>{len(rows)} reports ({scope}). Flags: accuracy more than {ACCURACY_GAP_PTS:g} pt under the host's, p50 over {LATENCY_RATIO:g}x the
profile's latency estimate, or input drift (PSI over 0.1).</p>
<table><tr>{head}</tr>{''.join(body)}</table>
{figures}
</body></html>
"""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    return out
