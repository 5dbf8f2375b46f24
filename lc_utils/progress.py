"""Progress bars that reach the console: a widget in Jupyter, text in a terminal, and a line on
the runner's console every few seconds while a notebook cell works.

A leaf module: the method (late chunking, the store, scale-out) reports progress through it, and
the runner names the notebook it runs in ``RUNNER_LABEL``. It imports tqdm only when a bar is made.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

__all__ = ["RUNNER_LABEL", "RUNNER_CONSOLE_MARK", "PROGRESS_EVERY_S", "progress_bar", "to_console"]

# lc_utils.run.runner names the notebook it runs in this variable of the kernel's environment.
RUNNER_LABEL = "LC_UTILS_RUNNER_LABEL"
# ... and here a file whose modification time is that of the last line on its console, so that
# the runner can tell a quiet cell from one whose bars are talking (its heartbeat).
RUNNER_CONSOLE_MARK = "LC_UTILS_RUNNER_CONSOLE_MARK"
PROGRESS_EVERY_S = 10.0  # seconds between two console lines of one bar under the runner


def progress_bar(total: int | None, desc: str, unit: str, **options: Any) -> Any:
    """A ``tqdm.auto`` bar: a widget in Jupyter, text in a terminal.

    Under the runner, which names the notebook in the kernel's ``LC_UTILS_RUNNER_LABEL``, the bar
    also writes a line to the runner's console every `PROGRESS_EVERY_S` seconds (``    [4/11]
    04_naive_vs_late | late chunking:  45%|####5     | 61.2k/136k [00:20<00:24, 3.05ktok/s]``),
    while the widget alone goes into the notebook.
    """
    from tqdm.auto import tqdm

    label = os.environ.get(RUNNER_LABEL)

    class Bar(tqdm):
        echoed = time.monotonic()  # the bar's start: a bar younger than PROGRESS_EVERY_S is quiet

        def update(self, n: float | None = 1) -> bool | None:
            displayed = super().update(n)
            if label and not self.disable and time.monotonic() - self.echoed >= PROGRESS_EVERY_S:
                self.echoed = time.monotonic()
                to_console(f"    {label} | {self}")
            return displayed

    return Bar(total=total, desc=desc, unit=unit, **options)


def to_console(line: str) -> None:
    """Write a line to the console the process started from, past ipykernel's capture of fd 1:
    a kernel's ``sys.stdout.fileno()`` is the copy of fd 1 it kept (without a capture: fd 1).
    Under the runner, also touch the file named in ``LC_UTILS_RUNNER_CONSOLE_MARK``."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError):  # io.UnsupportedOperation is an OSError
        fd = sys.__stdout__.fileno()
    clear = "\r\x1b[K" if os.isatty(fd) else ""  # over the runner's bar of cells, if drawn
    os.write(fd, f"{clear}{line}\n".encode())
    if mark := os.environ.get(RUNNER_CONSOLE_MARK):
        try:
            os.utime(mark)
        except OSError:  # the notebook ended between the check and the touch
            pass
