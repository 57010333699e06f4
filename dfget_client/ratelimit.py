"""A token bucket shared by coroutines: `--locallimit` downloads, `--totallimit` uploads."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable


class TokenBucket:
    """`rate` bytes per second, 0 = unlimited. Takers may go into debt and then sleep it off,
    so a large chunk never starves and the long-run rate is exact."""

    def __init__(
        self, rate: int, *, burst_seconds: float = 0.05, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()  # piece threads and the event loop share one bucket
        self._burst_seconds = burst_seconds
        self._rate = 0
        self._tokens = 0.0
        self._stamp = clock()
        self.set_rate(rate)
        self._tokens = self._burst  # start with a full bucket

    @property
    def rate(self) -> int:
        return self._rate

    def set_rate(self, rate: int) -> None:
        rate = max(0, int(rate))
        if rate and rate % 1000:
            rate += 1000 - rate % 1000  # the original rounds rates up to a multiple of 1000
        with self._lock:
            if rate != self._rate:
                self._refill()
                self._rate = rate
                self._tokens = min(self._tokens, self._burst)

    @property
    def _burst(self) -> float:
        return max(self._rate * self._burst_seconds, 16 * 1024)

    def _refill(self) -> None:
        now = self._clock()
        if self._rate:
            self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    def reserve(self, amount: int) -> float:
        """Take `amount` tokens now; → seconds the caller must wait before using them."""
        if self._rate <= 0 or amount <= 0:
            return 0.0
        with self._lock:
            self._refill()
            self._tokens -= amount
            return 0.0 if self._tokens >= 0 else -self._tokens / self._rate

    def wait_blocking(self, amount: int, cancelled: threading.Event | None = None) -> None:
        """For worker threads: take the tokens and sleep off the debt."""
        delay = self.reserve(amount)
        if delay > 0:
            if cancelled is not None:
                cancelled.wait(delay)
            else:
                time.sleep(delay)

    async def acquire(self, amount: int) -> None:
        delay = self.reserve(amount)
        if delay > 0:
            await asyncio.sleep(delay)
