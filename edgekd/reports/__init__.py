"""Device reports on the host: the collector (HTTP + store), comparisons with what the host expected,
tables and plots, and the latency factors that profiles are fitted with."""
from .analysis import Comparison, host_vs_device, latency_factors
from .schema import ReportError, parse_report, validate_report
from .databases import open_store
from .store import Store

__all__ = ["Comparison", "ReportError", "Store", "host_vs_device", "latency_factors", "open_store", "parse_report", "validate_report"]
