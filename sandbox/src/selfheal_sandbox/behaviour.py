"""What every behaviour module (one per AWS service, next to moto) looks like to the server.

A behaviour is built in `Sandbox.install()` (before moto serves a request: that is when
it patches moto through the adapter), started once moto serves, and stopped before the
server stops the processes it started. It keeps its own threads (see `clock.Periodic`)
and touches moto's state only through `sandbox.adapter`, holding `sandbox.lock` for
that and for nothing else: never across network or process I/O.
"""

from __future__ import annotations

from typing import Any, Protocol


class Behaviour(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def status(self) -> dict[str, Any]:
        """A small JSON-able summary for `selfheal-sandbox status --json`."""
        ...
