"""ALB target health checks: the per-target state machine and one HTTP probe.

Runs inside the data plane process (dataplane.py), on its event loop, so a
target's verdict and the routing decision that uses it live in one place.
The rules are AWS's, from DescribeTargetHealth and the target group health
check guide (research/aws-semantics.md §1.1-1.3):

* a newly registered target is `initial` until its first check; ONE passing
  check makes it `healthy` ("After your target is registered, it must pass one
  health check to be considered healthy");
* a healthy (or initial) target turns `unhealthy` after UnhealthyThresholdCount
  consecutive failed checks; an unhealthy one turns `healthy` again only after
  HealthyThresholdCount consecutive passes;
* each check is an HTTP GET with `User-Agent: ELB-HealthChecker/2.0` on a fresh
  connection that is closed afterwards; its result lasts for the whole interval,
  and the time a check takes does not shift the next one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from dataclasses import dataclass

import httptools

Verdict = tuple[str, str | None, str | None]  # (state, reason, description)

REGISTRATION_IN_PROGRESS: Verdict = (
    "initial",
    "Elb.RegistrationInProgress",
    "Target registration is in progress",
)
INITIAL_HEALTH_CHECKING: Verdict = (
    "initial",
    "Elb.InitialHealthChecking",
    "Initial health checks in progress",
)
HEALTHY: Verdict = ("healthy", None, None)
TIMEOUT: Verdict = ("unhealthy", "Target.Timeout", "Request timed out")
FAILED: Verdict = ("unhealthy", "Target.FailedHealthChecks", "Health checks failed")


def response_code_mismatch(code: int) -> Verdict:
    return (
        "unhealthy",
        "Target.ResponseCodeMismatch",
        f"Health checks failed with these codes: [{code}]",
    )


@dataclass(frozen=True)
class HealthCheckSettings:
    protocol: str  # HTTP | HTTPS
    port: str  # "traffic-port" or a number
    path: str
    interval_s: float  # AWS seconds
    timeout_s: float  # AWS seconds
    healthy_threshold: int
    unhealthy_threshold: int
    matcher: str  # "200", "200,202", "200-299"

    @classmethod
    def from_json(cls, raw: dict) -> HealthCheckSettings:
        return cls(**raw)

    def port_for(self, traffic_port: int) -> int:
        return traffic_port if self.port == "traffic-port" else int(self.port)


def is_loopback(host: str | None) -> bool:
    """Only 127.0.0.0/8 is ever probed or proxied to."""
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def code_matches(code: int, matcher: str) -> bool:
    """Matcher.HttpCode: a code, a comma list, a range "200-299", or a mix."""
    for part in matcher.replace(" ", "").split(","):
        if "-" in part:
            low, high = part.split("-", 1)
            if int(low) <= code <= int(high):
                return True
        elif part and int(part) == code:
            return True
    return False


class TargetHealth:
    """Consecutive-result counting for one registered target."""

    def __init__(self) -> None:
        self.verdict: Verdict = REGISTRATION_IN_PROGRESS
        self._passes = 0
        self._failures = 0

    @property
    def state(self) -> str:
        return self.verdict[0]

    def record(self, result: Verdict, settings: HealthCheckSettings) -> bool:
        """Count one check result; True when the state changed."""
        before = self.verdict
        if result is HEALTHY:
            self._passes += 1
            self._failures = 0
            if self.state == "initial" or (
                self.state == "unhealthy" and self._passes >= settings.healthy_threshold
            ):
                self.verdict = HEALTHY
        else:
            self._failures += 1
            self._passes = 0
            if self._failures >= settings.unhealthy_threshold:
                self.verdict = result
            elif self.state == "initial":
                self.verdict = INITIAL_HEALTH_CHECKING
            elif self.state == "unhealthy":
                # Still unhealthy; the reason follows the latest failure.
                self.verdict = result
        return self.verdict != before


class _StatusOnly:
    """httptools callbacks: only the status line matters to a health check."""

    def __init__(self) -> None:
        self.done = False

    def on_headers_complete(self) -> None:
        self.done = True


_INSECURE_TLS = ssl.create_default_context()
# Like the ALB: targets' certificates are not verified (self-signed is fine).
_INSECURE_TLS.check_hostname = False
_INSECURE_TLS.verify_mode = ssl.CERT_NONE


async def probe(
    host: str | None, port: int, settings: HealthCheckSettings, timeout_wall: float
) -> Verdict:
    """One health check; returns HEALTHY or the unhealthy verdict it stands for."""
    if not is_loopback(host):  # no (loopback) address: nothing could connect
        return FAILED
    try:
        async with asyncio.timeout(timeout_wall):
            return await _get(host, port, settings)
    except TimeoutError:
        return TIMEOUT
    except (OSError, httptools.HttpParserError, ssl.SSLError):
        return FAILED


async def _get(host: str, port: int, settings: HealthCheckSettings) -> Verdict:
    tls = _INSECURE_TLS if settings.protocol == "HTTPS" else None
    reader, writer = await asyncio.open_connection(host, port, ssl=tls)
    try:
        writer.write(
            f"GET {settings.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "User-Agent: ELB-HealthChecker/2.0\r\nAccept: */*\r\nConnection: close\r\n\r\n".encode()
        )
        status = _StatusOnly()
        parser = httptools.HttpResponseParser(status)
        while not status.done:
            data = await reader.read(65536)
            if not data:
                return FAILED  # closed before a complete status line and headers
            parser.feed_data(data)
        code = parser.get_status_code()
    finally:
        writer.close()
    return HEALTHY if code_matches(code, settings.matcher) else response_code_mismatch(code)
