"""AWS time in the sandbox.

`selfheal-sandbox up --time-scale N` runs every AWS period, delay and timeout N
times faster than the wall clock. Behaviours think in AWS seconds (a health check
interval of 5, a boot of 30, an alarm period of 60) and ask the clock for wall
time only where they sleep or wait on I/O. Everything the sandbox reports names
its unit: `*_aws_s` for AWS seconds, `*_wall_s` for wall seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class Clock:
    """Monotonic AWS time since the sandbox started, and AWS-time timestamps."""

    def __init__(
        self,
        time_scale: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall_time: Callable[[], float] = time.time,
    ) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale}")
        self.time_scale = time_scale
        self._monotonic = monotonic
        self._started_mono = monotonic()
        self._started_at = datetime.fromtimestamp(wall_time(), UTC)

    def now(self) -> float:
        """AWS seconds since the sandbox started (monotonic)."""
        return (self._monotonic() - self._started_mono) * self.time_scale

    def utcnow(self) -> datetime:
        """The AWS-time timestamp: start time + AWS seconds elapsed. Equals the wall
        clock at time scale 1; runs ahead of it at N > 1 (metric data, activities
        and alarm history carry these, so their periods line up with AWS seconds)."""
        return self._started_at + timedelta(seconds=self.now())

    def to_wall(self, aws_seconds: float) -> float:
        return aws_seconds / self.time_scale

    def to_aws(self, wall_seconds: float) -> float:
        return wall_seconds * self.time_scale

    def sleep(self, aws_seconds: float, stop: threading.Event | None = None) -> bool:
        """Sleep for AWS seconds; True when `stop` was set meanwhile."""
        wall = max(self.to_wall(aws_seconds), 0.0)
        if stop is None:
            time.sleep(wall)
            return False
        return stop.wait(wall)


class Periodic:
    """Calls `tick()` every `interval_aws` AWS seconds in a daemon thread until
    stopped. A tick that raises is logged by the caller's `tick` wrapper and the
    loop goes on: one bad tick must not end a behaviour for the sandbox's life."""

    def __init__(
        self,
        name: str,
        clock: Clock,
        interval_aws: float,
        tick: Callable[[], None],
        on_error: Callable[[BaseException], None],
        *,
        min_wall_interval: float = 0.02,
    ) -> None:
        self.name = name
        self.clock = clock
        self.interval_aws = interval_aws
        self._tick = tick
        self._on_error = on_error
        self._min_wall = min_wall_interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._tick()
            except Exception as e:  # reported, and the loop goes on
                self._on_error(e)
            spent = time.monotonic() - started
            wait = max(self.clock.to_wall(self.interval_aws) - spent, self._min_wall)
            if self._stop.wait(wait):
                break
