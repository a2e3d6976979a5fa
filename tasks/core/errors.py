"""The one exception type a step raises for a problem the user can fix."""

from __future__ import annotations


class StepError(Exception):
    """A failed check or bad input, with a message that says what is wrong and how to fix it.

    Parameters
    ----------
    step : str
        The workflow step that failed (``collect``, ``problem``...).
    check : str
        The name of the failed check.
    message : str
        What was observed, against which threshold, and what to do about it.
    """

    def __init__(self, step: str, check: str, message: str) -> None:
        self.step = step
        self.check = check
        self.message = message
        super().__init__(f"[{step}] {check}: {message}")
