"""The ALB's HTTP/1.1 reverse proxy, at the protocol level (uvloop + httptools).

One `ClientConnection` per client TCP connection, one request at a time on it
(pipelined requests wait their turn); each request is forwarded to a target on a
kept-alive connection from that target's pool (`TargetPool`). Measured on this
kind of machine, this design reaches about half of HAProxy's throughput where
aiohttp reaches a tenth (research/alb-proxy-throughput.md).

The responses the ALB itself generates follow its troubleshooting guide
(research/aws-semantics.md §1.5): 502 when the target refuses, resets, closes
with a request outstanding or answers garbage; 503 when the target group has no
registered target; 504 when the target does not connect within 10 s or sends
nothing for the load balancer's idle timeout. The target's status and body reach
the client unchanged; hop-by-hop headers are the proxy's own, as on any proxy.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import httptools

from .health_checks import is_loopback

# RFC 9110 §7.6.1 hop-by-hop headers, plus the framing the proxy redoes itself.
HOP_BY_HOP = frozenset(
    b"connection keep-alive proxy-connection te trailer transfer-encoding upgrade "
    b"content-length".split()
)
CONNECT_TIMEOUT_AWS_S = 10.0  # "could not connect to the target within 10 seconds" -> 504
# The kernel retransmits a lost SYN after 1 s of wall time whatever the time scale;
# a scaled connect timeout below that would fail connections AWS would not.
CONNECT_TIMEOUT_MIN_WALL_S = 3.0

_REASONS = {502: b"Bad Gateway", 503: b"Service Temporarily Unavailable", 504: b"Gateway Time-out"}


def elb_error(code: int, keep_alive: bool) -> bytes:
    """An ALB-generated error page (the HTML body users see from awselb/2.0)."""
    reason = _REASONS[code]
    body = (
        b"<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n<center><h1>%d %s</h1>"
        b"</center>\r\n</body>\r\n</html>\r\n" % (code, reason, code, reason)
    )
    return b"HTTP/1.1 %d %s\r\nServer: awselb/2.0\r\nContent-Type: text/html\r\n" % (
        code,
        reason,
    ) + b"Content-Length: %d\r\nConnection: %s\r\n\r\n%s" % (
        len(body),
        b"keep-alive" if keep_alive else b"close",
        body,
    )


class Route(Protocol):
    """What a listener does with a request (implemented by dataplane.Listener)."""

    port: int

    def choose(self, request: Request) -> tuple[Any, TargetPool | None, bytes | None]:
        """(target group or None, pool to forward to, or a ready response to send)."""
        ...

    def count_elb(self, tg: Any, code: int) -> None: ...

    def count_target(self, tg: Any, code: int, response_time: float) -> None: ...

    def wall(self, aws_seconds: float) -> float: ...

    def idle_timeout_wall(self) -> float: ...


class Request:
    __slots__ = ("body", "head", "host", "keep_alive", "method", "url")

    def __init__(  # noqa: PLR0917 - built once per request, in one place
        self, method: bytes, url: bytes, host: bytes, head: bytes, body: bytes, keep_alive: bool
    ) -> None:
        self.method = method
        self.url = url
        self.host = host
        self.head = head
        self.body = body
        self.keep_alive = keep_alive


class ClientConnection(asyncio.Protocol):
    """A client's connection to a listener."""

    def __init__(self, route: Route, connections: set[ClientConnection]) -> None:
        self.route = route
        self.connections = connections
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.peer = b"127.0.0.1"
        self.queue: deque[Request] = deque()
        self.busy = False
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []

    # -- asyncio

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = peer[0].encode()
        self.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.close()
        except httptools.HttpParserError:
            self.send(
                b"HTTP/1.1 400 Bad Request\r\nServer: awselb/2.0\r\nContent-Length: 0\r\n"
                b"Connection: close\r\n\r\n"
            )
            self.close()

    # -- httptools callbacks

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.queue.append(self._build_request())
        self._url, self._headers, self._body = b"", [], []
        if len(self.queue) > 1 and self.transport:
            self.transport.pause_reading()  # pipelining: one request at a time
        if not self.busy:
            self._next()

    def _build_request(self) -> Request:
        parser = self.parser
        method = parser.get_method()
        body = b"".join(self._body)
        lines = [b"%s %s HTTP/1.1\r\n" % (method, self._url or b"/")]
        forwarded_for = self.peer
        host = b""
        for name, value in self._headers:
            lower = name.lower()
            if lower == b"host":
                host = value
            if lower in HOP_BY_HOP or lower.startswith(b"x-forwarded-"):
                if lower == b"x-forwarded-for":
                    forwarded_for = value + b", " + self.peer
                continue
            lines.append(b"%s: %s\r\n" % (name, value))
        lines.append(
            b"X-Forwarded-For: %s\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: %d\r\n"
            % (forwarded_for, self.route.port)
        )
        if body or method in (b"POST", b"PUT", b"PATCH"):
            lines.append(b"Content-Length: %d\r\n" % len(body))
        lines.append(b"\r\n")
        url = self._url or b"/"
        return Request(method, url, host, b"".join(lines), body, parser.should_keep_alive())

    # -- request handling

    def _next(self) -> None:
        if not self.queue or self.transport is None:
            self.busy = False
            return
        self.busy = True
        request = self.queue.popleft()
        if not self.queue and self.transport:
            self.transport.resume_reading()
        tg, pool, ready = self.route.choose(request)
        if ready is not None:
            self.finish(request, ready)
        elif pool is None:
            self.fail(request, tg, 503)
        else:
            pool.forward(self, request, tg)

    def send(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def finish(self, request: Request, data: bytes | None = None) -> None:
        """The response to `request` is complete (data: its last bytes)."""
        if data:
            self.send(data)
        if not request.keep_alive:
            self.close()
            return
        self._next()

    def fail(self, request: Request, tg: Any, code: int) -> None:
        self.route.count_elb(tg, code)
        self.finish(request, elb_error(code, request.keep_alive))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        self.busy = False
        self.queue.clear()


class TargetPool:
    """Kept-alive connections to one target (host, port)."""

    def __init__(self, host: str | None, port: int, route_clock: Callable[[float], float]) -> None:
        self.host = host
        self.port = port
        self.wall = route_clock
        self.idle: list[Upstream] = []
        self.busy: set[Upstream] = set()

    def forward(self, client: ClientConnection, request: Request, tg: Any) -> None:
        while self.idle:
            upstream = self.idle.pop()
            if upstream.transport is not None and not upstream.transport.is_closing():
                upstream.start(client, request, tg)
                return
        asyncio.get_running_loop().create_task(self._connect_and_forward(client, request, tg))

    async def _connect_and_forward(
        self, client: ClientConnection, request: Request, tg: Any
    ) -> None:
        if not is_loopback(self.host):  # no (loopback) address: nothing can connect
            client.fail(request, tg, 502)
            return
        loop = asyncio.get_running_loop()
        try:
            timeout = max(self.wall(CONNECT_TIMEOUT_AWS_S), CONNECT_TIMEOUT_MIN_WALL_S)
            async with asyncio.timeout(timeout):
                _, upstream = await loop.create_connection(
                    lambda: Upstream(self), self.host, self.port
                )
        except TimeoutError:
            client.fail(request, tg, 504)
            return
        except OSError:  # refused, reset, unreachable
            client.fail(request, tg, 502)
            return
        if client.transport is None:  # the client left meanwhile
            self.release(upstream)
            return
        upstream.start(client, request, tg)

    def release(self, upstream: Upstream) -> None:
        self.busy.discard(upstream)
        if upstream.transport is not None and not upstream.transport.is_closing():
            self.idle.append(upstream)

    def close_all(self) -> None:
        """The target is gone (deregistration delay over): in-flight requests end."""
        for upstream in list(self.busy) + self.idle:
            upstream.abort()
        self.idle.clear()


class Upstream(asyncio.Protocol):
    """One kept-alive connection from the proxy to a target."""

    def __init__(self, pool: TargetPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.client: ClientConnection | None = None
        self.request: Request | None = None
        self.tg: Any = None
        self.started = 0.0
        self.last_data = 0.0
        self.headers_sent = False
        self.chunked = False
        # Transfer-Encoding seen / the body ends when the target closes.
        self.framed = False
        self.has_length = False
        self.until_close = False
        self.reason = b""
        self.headers: list[bytes] = []
        self.out: list[bytes] = []
        # Armed by the first exchange, then kept while exchanges follow each other: one
        # timer per connection, not one per request (call_later + cancel cost ~4 µs).
        self.timer: asyncio.TimerHandle | None = None

    # -- asyncio

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.client is None:
            self._stop_timer()
            self.pool.busy.discard(self)
            return
        if self.headers_sent and self.until_close:
            # A response without a length or chunks ends with the connection.
            self.on_message_complete()
            return
        # Closed (RST or FIN) with the request outstanding: 502.
        self._fail(502)

    def data_received(self, data: bytes) -> None:
        if self.client is None:  # nothing outstanding: garbage, drop the connection
            self.abort()
            return
        self.last_data = time.monotonic()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail(502)  # malformed response
            return
        self._flush()

    # -- one exchange

    def start(self, client: ClientConnection, request: Request, tg: Any) -> None:
        self.pool.busy.add(self)
        self.client, self.request, self.tg = client, request, tg
        self.headers_sent = False
        self.framed = self.has_length = self.until_close = False
        self.reason = b""
        self.headers = []
        self.started = self.last_data = time.monotonic()
        if self.transport is None:  # closed between the pool check and now
            self._fail(502)
            return
        self.transport.write(request.head + request.body if request.body else request.head)
        self.out = []
        loop = asyncio.get_running_loop()
        idle = client.route.idle_timeout_wall()
        if self.timer is not None and self.timer.when() > loop.time() + idle:
            self._stop_timer()  # the idle timeout was shortened since it was armed
        if self.timer is None:
            self.timer = loop.call_later(idle, self._check_idle)

    def _check_idle(self) -> None:
        if self.client is None:  # back in the pool: the next exchange arms it again
            self.timer = None
            return
        idle = self.client.route.idle_timeout_wall()
        quiet = time.monotonic() - self.last_data
        if quiet >= idle:
            self._fail(504)  # "did not respond before the idle timeout elapsed"
        else:
            self.timer = asyncio.get_running_loop().call_later(idle - quiet, self._check_idle)

    def _fail(self, code: int) -> None:
        client, request, tg = self.client, self.request, self.tg
        self._end_exchange()
        self.abort()
        if client is None or request is None:
            return
        if self.headers_sent:
            client.close()  # too late for an error page: cut the response short
        else:
            client.fail(request, tg, code)

    def _end_exchange(self) -> None:
        self.client = self.request = None
        self.out = []

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def abort(self) -> None:
        self._stop_timer()
        if self.transport is not None:
            self.transport.abort()
            self.transport = None
        self.pool.busy.discard(self)

    def _flush(self) -> None:
        if self.out and self.client is not None:
            self.client.send(b"".join(self.out))
            self.out = []

    # -- httptools callbacks

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower == b"transfer-encoding":
            self.framed = True
        elif lower == b"content-length":
            self.has_length = True
        if lower not in HOP_BY_HOP or lower == b"content-length":
            self.headers.append(b"%s: %s\r\n" % (name, value))

    def on_headers_complete(self) -> None:
        code = self.parser.get_status_code()
        if self.client is None or self.request is None:
            return
        self.client.route.count_target(self.tg, code, time.monotonic() - self.started)
        no_body = code in (204, 304) or code < 200 or self.request.method == b"HEAD"
        self.chunked = not self.has_length and not no_body
        self.until_close = self.chunked and not self.framed
        head = [b"HTTP/1.1 %d %s\r\n" % (code, self.reason), *self.headers]
        if self.chunked:
            head.append(b"Transfer-Encoding: chunked\r\n")
        head.append(
            b"Connection: keep-alive\r\n\r\n"
            if self.request.keep_alive
            else b"Connection: close\r\n\r\n"
        )
        self.out.append(b"".join(head))
        self.headers_sent = True
        if self.request.method == b"HEAD":
            # httptools cannot be told a HEAD response has no body: finish here
            # and do not reuse this connection.
            self._complete(reuse=False)

    def on_body(self, body: bytes) -> None:
        if self.chunked:
            self.out.append(b"%x\r\n%s\r\n" % (len(body), body))
        else:
            self.out.append(body)

    def on_message_complete(self) -> None:
        if self.client is None:
            return
        if self.chunked:
            self.out.append(b"0\r\n\r\n")
        self._complete(reuse=self.parser.should_keep_alive())

    def _complete(self, reuse: bool) -> None:
        client, request = self.client, self.request
        data = b"".join(self.out)
        self._end_exchange()
        if reuse:
            self.pool.release(self)
        else:
            self.abort()
        if client is not None and request is not None:
            client.finish(request, data)
