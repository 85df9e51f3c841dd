"""Errors the host raises for bad input: each says what is wrong and how to fix it.

The CLI prints them as one line and exits non-zero; a traceback means a bug in edgekd.
"""
from edgekd_runtime.errors import RuntimeFailure


class EdgekdError(RuntimeFailure):
    exit_code = 2


class DataError(EdgekdError):
    pass


class ProfileError(EdgekdError):
    pass


class TeacherError(EdgekdError):
    pass


class ConversionError(EdgekdError):
    exit_code = 5


class FitError(EdgekdError):
    """No candidate student fits the profile's budgets."""


class BudgetError(EdgekdError):
    """The time budget cannot hold even the smallest useful run."""
