"""Time budgets: a deadline for a whole job, its phases' predicted seconds, and one progress bar over all of them.

A build is a chain of phases (teacher labels, student choice, training, conversion). Each phase is planned in
seconds before it starts; the bar's unit is a planned second, so tqdm's ETA is the time left for the whole job,
not for the phase that happens to be running. A phase that ends early (early stopping) jumps the bar to its end.

>>> clock = Budget(parse_duration("90s"))
>>> clock.total
90.0
>>> 0 < clock.remaining() <= 90
True
"""
from __future__ import annotations

import functools
import re
import sys
import time
from typing import Dict, List, Optional, Tuple

from .errors import EdgekdError

DEFAULT_BUDGET = "20m"
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text) -> float:
    """Seconds from ``"20m"``, ``"1h30m"``, ``"90s"``, ``"45"`` (seconds) or a number."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        s = str(text).strip().lower().replace(" ", "")
        parts = re.fullmatch(r"((?:\d+(?:\.\d+)?[hms])+|\d+(?:\.\d+)?)", s)
        if not parts:
            raise EdgekdError(f"time budget {text!r} is not a duration", "write it as 20m, 1h30m, 90s or a number of seconds")
        if s[-1].isdigit():
            seconds = float(s)
        else:
            seconds = sum(float(v) * _UNITS[u] for v, u in re.findall(r"(\d+(?:\.\d+)?)([hms])", s))
    if seconds <= 0:
        raise EdgekdError(f"time budget must be positive (got {text!r})", "e.g. --time-budget 20m")
    return seconds


def format_seconds(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class Budget:
    """A wall-clock deadline that starts when the object is made."""

    def __init__(self, seconds: float):
        self.total = float(seconds)
        self.start = time.monotonic()
        self.deadline = self.start + self.total

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())


class JobProgress:
    """One bar for a job of planned phases. ``plan(name, seconds)`` (re)plans a phase, ``begin(name)`` starts it,
    ``update(fraction)`` moves within it, ``end()`` closes it at whatever it really took."""

    def __init__(self, enabled: bool = True, desc: str = "build"):
        self.enabled = enabled
        self.desc = desc
        self.phases: Dict[str, float] = {}
        self.order: List[str] = []
        self.done: Dict[str, float] = {}  # finished phases: planned seconds credited to the bar
        self.current: Optional[str] = None
        self.fraction = 0.0
        self.bar = None
        self.actual: Dict[str, float] = {}
        self._began = 0.0

    def plan(self, name: str, seconds: float) -> None:
        if name not in self.phases:
            self.order.append(name)
        self.phases[name] = max(0.0, float(seconds))
        self._refresh()

    def planned(self) -> List[Tuple[str, float]]:
        return [(n, self.phases[n]) for n in self.order]

    def begin(self, name: str) -> None:
        if name not in self.phases:
            self.plan(name, 0.0)
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=1.0, desc=self.desc, unit="s", disable=not self.enabled, file=sys.stderr, leave=False,
                            dynamic_ncols=True, bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}")
        self.current, self.fraction = name, 0.0
        self._began = time.monotonic()
        self._refresh()

    def update(self, fraction: float, note: str = "") -> None:
        self.fraction = min(1.0, max(self.fraction, float(fraction)))
        if note and self.bar is not None:
            self.bar.set_postfix_str(note, refresh=False)
        self._refresh()

    def end(self, settle: bool = False) -> None:
        """``settle``: the phase's plan becomes what it took (for a phase that could not be planned ahead)."""
        if self.current is not None:
            self.actual[self.current] = time.monotonic() - self._began
            if settle:
                self.phases[self.current] = self.actual[self.current]
            self.done[self.current] = self.phases[self.current]
        self.current, self.fraction = None, 0.0
        self._refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _refresh(self) -> None:
        if self.bar is None:
            return
        total = sum(self.phases.values()) or 1.0
        n = sum(self.done.values())
        if self.current is not None:
            n += self.fraction * self.phases[self.current]
        self.bar.total = total
        self.bar.n = min(n, total)
        if self.current is not None:
            self.bar.set_description_str(f"{self.desc} [{self.current}]", refresh=False)
        self.bar.refresh()


def close_open_bars() -> None:
    """Clear every bar a failed phase left open, so that what is printed next starts its own line."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def closes_bars_on_error(fn):
    """A library call whose error (or Ctrl-C) clears the bars its phases left open: the caller's traceback or
    message then starts on its own line, whether it came through the CLI or from Python."""
    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BaseException:
            close_open_bars()
            raise

    return call


MIN_STEPS = 20  # steps observed before a pace is trusted


class Pace:
    """How much slower training steps run than planned (never below 1): the machine got busier since the plan timed
    its steps, and the phases still to come (conversion, verification) will be slower by about as much, so the time
    kept for them grows with it.

    >>> pace = Pace(planned_step_seconds=0.01)
    >>> pace.factor()
    1.0
    >>> for _ in range(MIN_STEPS):
    ...     pace.observe(0.03)
    >>> round(pace.factor(), 2)
    3.0
    """

    def __init__(self, planned_step_seconds: float, most: float = 4.0):
        self.planned = max(float(planned_step_seconds), 1e-9)
        self.most = most
        self.seconds = 0.0
        self.steps = 0

    def observe(self, step_seconds: float) -> None:
        self.seconds += step_seconds
        self.steps += 1

    def factor(self) -> float:
        if self.steps < MIN_STEPS:
            return 1.0
        return min(self.most, max(1.0, self.seconds / self.steps / self.planned))



def keras_callback(job: JobProgress, epochs: int, steps_per_epoch: int, seconds: float, pace: Optional[Pace] = None):
    """A tf_keras callback that moves ``job``'s current phase by steps done or time spent, whichever is further:
    with early stopping the epochs are a cap, and the phase's planned ``seconds`` are the honest bound. ``pace``
    is fed the seconds of every step after an epoch's first (which holds graph tracing and input start-up)."""
    import tf_keras as keras

    class _Advance(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start = time.monotonic()
            self.steps = 0
            self.epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch + 1
            self.last = None

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            now = time.monotonic()
            if pace is not None and self.last is not None:
                pace.observe(now - self.last)
            self.last = now
            if batch % 5 == 0:
                by_steps = self.steps / max(1, epochs * steps_per_epoch)
                by_time = (time.monotonic() - self.start) / max(seconds, 1e-6)
                job.update(max(by_steps, by_time), f"epoch {self.epoch}/{epochs} loss {(logs or {}).get('loss', 0):.3f}")

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            if "val_acc" in logs:
                job.update(self.steps / max(1, epochs * steps_per_epoch), f"epoch {epoch + 1}/{epochs} val_acc {logs['val_acc']:.4f}")

    return _Advance()
