"""Whether the daemon's loop still moves: the answer the systemd watchdog pings on.

The loop is a chain of steps, each with a bound: asking MAAS (a call that works makes
progress at least every `quiet_limit` seconds: `maas.client.longest_silence`), deciding (no
await, so it cannot hang without blocking the event loop, which stops the pings by itself),
and waiting (for a period or a backoff the loop chose). Each step marks its progress with
`progressed(then_idle)`: the next mark is due within `then_idle + quiet_limit` seconds
(`then_idle` is a wait the loop is about to make on purpose). A mark that does not come in
time means something hangs, wherever it is: at start-up before the first request, in a
request to MAAS that never answers nor times out, in a pass, in a wait. Then `alive()` turns
False and stays so until the next mark.

Time comes from the daemon's `Clock`, so a test moves it. This module only keeps the
deadline; withholding the pings is `common.notify`'s, and logging is the loop's.
"""

from __future__ import annotations

from maasflow.common.clock import Clock


class Liveness:
    """The deadline of the loop's next sign of progress (see the module docstring)."""

    __slots__ = ("_clock", "_deadline", "quiet_limit")

    def __init__(self, quiet_limit: float, clock: Clock) -> None:
        self.quiet_limit = quiet_limit
        self._clock = clock
        self._deadline = clock.monotonic() + quiet_limit  # start-up is a step like any other

    def progressed(self, then_idle: float = 0.0) -> None:
        """The loop moved now; it may wait `then_idle` seconds on purpose before the next step."""
        self._deadline = self._clock.monotonic() + max(then_idle, 0.0) + self.quiet_limit

    def overdue_s(self) -> float:
        """Seconds past the deadline (0 or less while the loop is on time)."""
        return self._clock.monotonic() - self._deadline

    def alive(self) -> bool:
        """False once the next sign of progress is overdue."""
        return self.overdue_s() <= 0
