"""How long to wait before trying again, and a wait that a stop signal cuts short.

One policy for every retry in maasflow (a busy MAAS, a failed pass, a rejected key at
start-up, a failed provisioning run), so they cannot drift apart. `Backoff(base, cap)` grows
the nominal delay ``base * factor**(attempt - 1)`` up to `cap`, and jitters it with **equal
jitter**: half of the nominal delay is fixed, the other half random, so the delay lies in
``[nominal / 2, nominal]``. Why that one:

- it never exceeds `cap`, so a configured ceiling is a promise;
- it never falls below half the nominal delay, so the backoff still grows with every
  failure and never degenerates into an immediate retry (full jitter can draw ~0, which
  against a MAAS that just rejected a key or refused a connection is hammering it);
- half the delay is still random, enough to spread many daemons that failed together
  (a MAAS restart) so they do not come back in step.

A server's ``Retry-After`` wins over the formula (capped too): the server knows best when
it will be ready. The random source is injected, so tests pin the jitter.

`interruptible_sleep` waits out a delay unless an event (a stop signal) is set first, with
the sleep function injected so a fake clock can stand in for time. Deciding *whether* to
retry is the caller's business; this module only says how long.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

_MAX_STEPS = 64  # beyond this many doublings every sane cap has long been reached


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with equal jitter (see the module docstring)."""

    base: float
    cap: float
    factor: float = 2.0
    rand: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0 or self.factor < 1:
            raise ValueError("backoff needs base >= 0, cap >= 0 and factor >= 1")

    def nominal(self, attempt: int) -> float:
        """The un-jittered delay before retry number `attempt` (1-based; less counts as 1)."""
        steps = min(max(attempt, 1) - 1, _MAX_STEPS)
        try:
            grown = self.base * self.factor**steps
        except OverflowError:
            return self.cap
        return min(self.cap, grown)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry `attempt`: the server's `retry_after` if given, else
        the jittered nominal delay; never more than `cap`."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.cap)
        nominal = self.nominal(attempt)
        return nominal / 2 + self.rand() * nominal / 2


async def interruptible_sleep(
    seconds: float,
    wakeup: asyncio.Event,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> bool:
    """Wait `seconds` with `sleep`, or until `wakeup` is set; True when the wait ran out.

    False means `wakeup` came first (or was set already): the caller should stop waiting
    for whatever it was going to do next.
    """
    if wakeup.is_set():
        return False
    nap = asyncio.ensure_future(sleep(seconds))
    woken = asyncio.ensure_future(wakeup.wait())
    try:
        done, _ = await asyncio.wait({nap, woken}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (nap, woken):
            task.cancel()
        await asyncio.gather(nap, woken, return_exceptions=True)
    if nap in done:
        nap.result()  # a sleep that failed is an error, not a wake-up
    return woken not in done
