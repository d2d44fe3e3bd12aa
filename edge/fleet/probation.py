"""Session probation: the first sessions after a switch judge the new release.

A release that makes sessions end in an error (an exception in the pipeline) is rolled
back like one that fails its self-test. Only errors count: an honest ``fail`` or
``refer`` is a retiree not matched, not a bad release.
"""

from dataclasses import dataclass
from enum import Enum


class Verdict(Enum):
    """Where a release's session probation stands."""

    WATCHING = "watching"
    PASSED = "passed"
    FAILED = "failed"


@dataclass(frozen=True)
class Policy:
    """``[fleet] probation_sessions`` and ``probation_max_error_rate``."""

    sessions: int
    max_error_rate: float

    def verdict(self, sessions: int, errors: int) -> Verdict:
        """The verdict after ``sessions`` sessions, ``errors`` of them ended in an error.

        It fails as soon as the errors are more than the rate allows over the whole
        window (more sessions cannot bring it back under), and passes when the window is
        full without that; a window of 0 sessions is off (always passed)."""
        if self.sessions <= 0:
            return Verdict.PASSED
        if errors > self.max_error_rate * self.sessions:
            return Verdict.FAILED
        return Verdict.PASSED if sessions >= self.sessions else Verdict.WATCHING

    def reason(self, sessions: int, errors: int) -> str:
        """Why a release failed its session probation, for central."""
        return (
            f"{errors} of the first {sessions} session(s) ended in an error (more than "
            f"{self.max_error_rate:g} of {self.sessions})"
        )
