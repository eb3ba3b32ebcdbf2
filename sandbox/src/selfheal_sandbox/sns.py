"""SNS delivery: what happens after Publish and Subscribe (Behaviour "sns").

AWS rules followed (Amazon SNS Developer Guide: "Subscribing an HTTP/S endpoint",
"HTTP/S notification JSON format", "Amazon SNS message delivery retries"):

* http, https, email and email-json subscriptions start PendingConfirmation; SNS
  sends the endpoint a SubscriptionConfirmation (Token, SubscribeURL) and delivers
  nothing else until ConfirmSubscription is called or the SubscribeURL visited.
* Notifications are POSTed with the x-amz-sns-* headers and the JSON body
  (Type, MessageId, TopicArn, Subject, Message, Timestamp, SignatureVersion,
  Signature, SigningCertURL, UnsubscribeURL). Publish never waits for delivery.
* A delivery fails on HTTP 500-599, a status outside 200-599, a 15 s timeout or a
  connection/TLS error, and is retried per the default HTTP/S delivery policy:
  3 retries, 20 s apart (scaled by the time scale). 2xx-4xx count as delivered.

Sandbox mechanics: only loopback (127.0.0.0/8, localhost) endpoints are contacted;
any other host is a failed delivery, logged, so nothing leaves the machine. Email
goes to `<state>/mailbox/<address>/<timestamp>-<message id>.json`; the confirmation
email is written there too (with its SubscribeURL and Token), and an email
subscription stays pending until it is confirmed, as on AWS.
"""

from __future__ import annotations

import base64
import heapq
import http.client
import ipaddress
import itertools
import json
import logging
import re
import secrets
import ssl
import threading
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

from .adapter.sns import Delivery
from .state import atomic_write

if TYPE_CHECKING:
    from .server import Sandbox

log = logging.getLogger(__name__)

ROUTE = "/_sandbox/sns/"
# AWS default delivery policy for HTTP/S (DEFAULT_EFFECTIVE_DELIVERY_POLICY):
# numRetries 3, linear, min/max delay 20 s.
RETRIES = 3
RETRY_DELAY_AWS_S = 20.0
REQUEST_TIMEOUT_AWS_S = 15.0
# A local endpoint is always given this much wall time, whatever the time scale.
MIN_WALL_TIMEOUT_S = 1.0
USER_AGENT = "Amazon Simple Notification Service Agent"
RECENT_HTTP_KEPT = 50


@dataclass
class _Job:
    delivery: Delivery
    attempt: int = 0


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _iso(delivery: Delivery) -> str:
    t = delivery.timestamp
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


class SnsDelivery:
    """Implements `Behaviour`: confirmations, notifications, retries, the mailbox."""

    name = "sns"

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.mailbox = sandbox.config.state.mailbox_dir
        self._heap: list[tuple[float, int, _Job]] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._stopping = False
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sns-delivery")
        self._thread = threading.Thread(target=self._schedule, name="sns-scheduler", daemon=True)
        self._counts_lock = threading.Lock()
        self.delivered = 0
        self.failed = 0
        # The latest notifications delivered over http(s), for `status` (email has the mailbox).
        self.recent_http: deque[dict[str, Any]] = deque(maxlen=RECENT_HTTP_KEPT)
        self.retried = 0
        sandbox.adapter.install_sns_hooks(
            now=sandbox.clock.utcnow,
            deliver=self.enqueue,
            new_message_id=lambda: str(uuid.uuid4()),
        )
        sandbox.routes[ROUTE] = self._route

    # -- Behaviour

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def status(self) -> dict[str, Any]:
        subscriptions = [
            {
                "subscription_arn": s.arn,
                "topic_arn": s.topic_arn,
                "protocol": s.protocol,
                "endpoint": s.endpoint,
                "pending_confirmation": s.pending,
            }
            for s in self.sandbox.adapter.subscriptions()
        ]
        with self._cv:
            queued = len(self._heap)
        with self._counts_lock:
            recent_http = list(self.recent_http)
        return {
            "subscriptions": subscriptions,
            "delivered": self.delivered,
            "failed": self.failed,
            "retries": self.retried,
            "queued": queued,
            "mailbox": str(self.mailbox),
            "recent_http_notifications": recent_http,
        }

    # -- queue (enqueue runs inside API requests, under the sandbox lock: only queue)

    def enqueue(self, delivery: Delivery, delay_wall_s: float = 0.0, attempt: int = 0) -> None:
        with self._cv:
            due = time.monotonic() + delay_wall_s
            heapq.heappush(self._heap, (due, next(self._seq), _Job(delivery, attempt)))
            self._cv.notify()

    def _schedule(self) -> None:
        while True:
            with self._cv:
                while not self._stopping and (
                    not self._heap or self._heap[0][0] > time.monotonic()
                ):
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cv.wait(wait)
                if self._stopping:
                    return
                _, _, job = heapq.heappop(self._heap)
            self._pool.submit(self._attempt, job)

    def _attempt(self, job: _Job) -> None:
        d = job.delivery
        try:
            if d.protocol in ("email", "email-json"):
                self._write_mail(d)
                error = None
            else:
                error = self._post(d)
        except Exception as e:  # a delivery bug must never end the scheduler
            log.exception("sns %s delivery to %s crashed", d.kind, d.endpoint)
            error = f"sandbox error: {e}"
        if error is None:
            self._count("delivered")
            if d.kind == "Notification" and d.protocol in ("http", "https"):
                with self._counts_lock:
                    self.recent_http.append(
                        {
                            "timestamp": _iso(d),
                            "protocol": d.protocol,
                            "endpoint": d.endpoint,
                            "subject": d.subject,
                            "topic_arn": d.topic_arn,
                        }
                    )
            return
        retryable = not error.startswith("not contacted")
        if retryable and job.attempt < RETRIES:
            self._count("retried")
            log.warning(
                "sns %s %s to %s failed (%s); retry %d of %d in %g AWS s "
                "(AWS: default HTTP/S delivery policy)",
                d.kind,
                d.message_id,
                d.endpoint,
                error,
                job.attempt + 1,
                RETRIES,
                RETRY_DELAY_AWS_S,
            )
            self.enqueue(d, self.sandbox.clock.to_wall(RETRY_DELAY_AWS_S), job.attempt + 1)
            return
        self._count("failed")
        log.warning(
            "sns %s %s to %s failed for good after %d attempt(s): %s",
            d.kind,
            d.message_id,
            d.endpoint,
            job.attempt + 1,
            error,
        )

    def _count(self, name: str) -> None:
        with self._counts_lock:
            setattr(self, name, getattr(self, name) + 1)

    # -- http/https

    def _post(self, d: Delivery) -> str | None:
        """One POST; None when delivered, else why it failed."""
        url = urlsplit(d.endpoint)
        if not _is_loopback(url.hostname):
            return (
                f"not contacted: {url.hostname} is not a loopback address "
                "(the sandbox never sends anything off this machine)"
            )
        body = json.dumps(self.http_body(d)).encode()
        headers = {
            "x-amz-sns-message-type": d.kind,
            "x-amz-sns-message-id": d.message_id,
            "x-amz-sns-topic-arn": d.topic_arn,
            "Content-Type": "text/plain; charset=UTF-8",
            "User-Agent": USER_AGENT,
        }
        if d.kind == "Notification":
            headers["x-amz-sns-subscription-arn"] = d.subscription_arn
        timeout = max(self.sandbox.clock.to_wall(REQUEST_TIMEOUT_AWS_S), MIN_WALL_TIMEOUT_S)
        conn: http.client.HTTPConnection
        if url.scheme == "https":
            # Verified TLS, as AWS does: a self-signed endpoint fails delivery.
            conn = http.client.HTTPSConnection(
                url.hostname or "", url.port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=timeout)
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        try:
            conn.request("POST", path, body=body, headers=headers)
            code = conn.getresponse().status
        except (OSError, http.client.HTTPException) as e:
            return f"{type(e).__name__}: {e}"
        finally:
            conn.close()
        if 500 <= code <= 599 or not 200 <= code <= 599:
            return f"HTTP {code}"
        log.info("sns %s %s delivered to %s (HTTP %d)", d.kind, d.message_id, d.endpoint, code)
        return None

    def http_body(self, d: Delivery) -> dict[str, Any]:
        region = d.topic_arn.split(":")[3]
        doc: dict[str, Any] = {"Type": d.kind, "MessageId": d.message_id}
        if d.kind == "SubscriptionConfirmation":
            doc["Token"] = d.token
        doc["TopicArn"] = d.topic_arn
        if d.kind == "Notification" and d.subject:
            doc["Subject"] = d.subject
        doc["Message"] = d.message
        if d.kind == "SubscriptionConfirmation":
            doc["SubscribeURL"] = self.subscribe_url(d)
        doc["Timestamp"] = _iso(d)
        doc["SignatureVersion"] = "1"
        # Not a real signature: nothing in the sandbox can be verified against AWS keys.
        doc["Signature"] = base64.b64encode(secrets.token_bytes(256)).decode()
        doc["SigningCertURL"] = (
            f"https://sns.{region}.amazonaws.com/"
            f"SimpleNotificationService-{secrets.token_hex(16)}.pem"
        )
        if d.kind == "Notification":
            doc["UnsubscribeURL"] = self.unsubscribe_url(d)
        return doc

    def subscribe_url(self, d: Delivery) -> str:
        query = urlencode(
            {"Action": "ConfirmSubscription", "TopicArn": d.topic_arn, "Token": d.token or ""}
        )
        return f"{self.sandbox.info.endpoint}{ROUTE}?{query}"

    def unsubscribe_url(self, d: Delivery) -> str:
        query = urlencode({"Action": "Unsubscribe", "SubscriptionArn": d.subscription_arn})
        return f"{self.sandbox.info.endpoint}{ROUTE}?{query}"

    # -- email

    def _write_mail(self, d: Delivery) -> None:
        folder = self.mailbox / re.sub(r"[^A-Za-z0-9@._+-]", "_", d.endpoint)
        folder.mkdir(parents=True, exist_ok=True)
        if d.kind == "SubscriptionConfirmation":
            body = (
                f"{d.message}\n\nConfirm subscription:\n{self.subscribe_url(d)}\n"
                if d.protocol == "email"
                else json.dumps(self.http_body(d))
            )
        elif d.protocol == "email-json":
            body = json.dumps(self.http_body(d))
        else:
            body = (
                f"{d.message}\n\n--\nIf you wish to stop receiving notifications from this "
                f"topic, please click or visit the link below to unsubscribe:\n"
                f"{self.unsubscribe_url(d)}\n"
            )
        mail: dict[str, Any] = {
            "type": d.kind,
            "to": d.endpoint,
            "protocol": d.protocol,
            "subject": d.subject or "AWS Notification Message",
            "body": body,
            "message": d.message,
            "topic_arn": d.topic_arn,
            "subscription_arn": d.subscription_arn,
            "message_id": d.message_id,
            "timestamp": _iso(d),
        }
        if d.kind == "SubscriptionConfirmation":
            mail["subscribe_url"] = self.subscribe_url(d)
            mail["token"] = d.token
        stamp = d.timestamp.strftime("%Y%m%dT%H%M%S") + f".{d.timestamp.microsecond // 1000:03d}Z"
        atomic_write(folder / f"{stamp}-{d.message_id}.json", json.dumps(mail, indent=2) + "\n")
        log.info("sns %s %s written to the mailbox of %s", d.kind, d.message_id, d.endpoint)

    # -- SubscribeURL / UnsubscribeURL (GET, on the sandbox's endpoint)

    def _route(self, environ: dict[str, Any]) -> tuple[str, str, bytes]:
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        action = query.get("Action")
        with self.sandbox.lock:
            if action == "ConfirmSubscription":
                arn = self.sandbox.adapter.confirm_subscription(
                    query.get("TopicArn", ""), query.get("Token", "")
                )
                if arn is None:
                    return _xml_error("InvalidParameter", "Invalid parameter: Token")
                log.info("sns subscription %s confirmed through its SubscribeURL", arn)
                return _xml_ok("ConfirmSubscription", f"<SubscriptionArn>{arn}</SubscriptionArn>")
            if action == "Unsubscribe":
                arn = query.get("SubscriptionArn", "")
                self.sandbox.adapter.unsubscribe(arn)
                log.info("sns subscription %s removed through its UnsubscribeURL", arn)
                return _xml_ok("Unsubscribe", "")
        return _xml_error("InvalidAction", f"unknown action {action!r}")


def _xml_ok(action: str, inner: str) -> tuple[str, str, bytes]:
    body = (
        f'<{action}Response xmlns="http://sns.amazonaws.com/doc/2010-03-31/">'
        f"<{action}Result>{inner}</{action}Result>"
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        f"</{action}Response>"
    )
    return "200 OK", "text/xml", body.encode()


def _xml_error(code: str, message: str) -> tuple[str, str, bytes]:
    body = (
        f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
        f"<Message>{message}</Message></Error></ErrorResponse>"
    )
    return "400 Bad Request", "text/xml", body.encode()
