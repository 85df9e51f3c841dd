"""Tables in the form practitioners quote: model | target | format | size | latency | accuracy | drop."""
from __future__ import annotations

from typing import List


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    return str(n)


def print_table(rows: List[dict], title: str = "") -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title or None)
    for col in ("model", "target", "format", "size (x smaller than teacher at same precision)", "params (x fewer than teacher)", "latency p50 (this machine)", "accuracy", "drop vs teacher"):
        table.add_column(col, justify="right" if col not in ("model", "target", "format") else "left")
    for r in rows:
        ratio = f" ({r['smaller_than_teacher']:.1f}x)" if r.get("smaller_than_teacher") else ""
        smaller = f" ({r['bytes_smaller_than_teacher']:.1f}x)" if r.get("bytes_smaller_than_teacher") else ""
        table.add_row(
            r["name"], r["profile"], r["format"], human_bytes(r["bytes"]) + smaller, f"{r.get('params', 0):,}{ratio}", f"{r['latency_ms_p50']:.3f} ms",
            f"{100 * r['accuracy']:.2f}%", "baseline" if r["name"] == "teacher" else f"{r['accuracy_drop']:+.2f} pts",
        )
    console = Console()
    # Piped output defaults to 80 columns, which wraps every cell; a table this wide reads better unwrapped.
    console.width = max(console.width, 130)
    console.print(table)
