"""What a student costs on a device, and the search for the largest student that fits a profile.

- ``cost``: the cost model - parameters, MACs, activation lifetimes and the fitted byte constants;
- ``measure``: the same figures measured on a converted graph (and the TFLite Micro arena);
- ``search``: the candidate grid, each candidate's use of the profile's budgets, and ``size_student``;
- ``latency_fit``: fitting a profile's latency model to latency measured on the device.

Imports go one way: sizing uses ``edgekd.profiles``, never the reverse. The names below are the ones the rest
of edgekd uses; anything else is imported from its module.
"""
from .cost import Cost, model_cost, student_cost
from .latency_fit import fit_latency
from .measure import converted_cost, measure_student
from .search import MAX_STUDENT_RATIO, FitReport, candidates, default_family, fit_report, priced, size_student

__all__ = [
    "MAX_STUDENT_RATIO",
    "Cost",
    "FitReport",
    "fit_latency",
    "candidates",
    "converted_cost",
    "default_family",
    "fit_report",
    "measure_student",
    "model_cost",
    "priced",
    "size_student",
    "student_cost",
]
