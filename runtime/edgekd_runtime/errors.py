"""Errors the runtime raises, each with the exit code the CLI returns for it.

Exit codes (documented in the README):
  2  bad input (a wrong path, shape, dtype, a malformed manifest, NaN/Inf input)
  3  integrity failure (a file whose sha256 differs from the manifest, a missing file)
  4  engine unavailable (the Python package for the engine is not installed here)
  5  the model itself failed to load or run
"""


class RuntimeFailure(Exception):
    """Base class: a message a user can act on, and an exit code."""

    exit_code = 1

    def __init__(self, message, hint=None):
        self.hint = hint
        super(RuntimeFailure, self).__init__(message)

    def __str__(self):
        text = super(RuntimeFailure, self).__str__()
        if self.hint:
            text += " (" + self.hint + ")"
        return text


class BadInputError(RuntimeFailure):
    exit_code = 2


class BundleFormatError(BadInputError):
    """The bundle's layout or manifest is not one this runtime reads."""


class IntegrityError(RuntimeFailure):
    exit_code = 3


class EngineUnavailableError(RuntimeFailure):
    exit_code = 4


class ModelError(RuntimeFailure):
    exit_code = 5
