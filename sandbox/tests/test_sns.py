"""SNS delivery: confirmation, http(s) notifications from a background thread with
AWS's headers and body, retries, email to the mailbox. Retries are tested in-process
with a clock 1000x faster than AWS (the policy's 20 s delay is 20 ms)."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import RunningSandbox
from ec2_helpers import wait_for

from selfheal_sandbox.adapter import MotoAdapter
from selfheal_sandbox.adapter.sns import Delivery
from selfheal_sandbox.sns import SnsDelivery
from selfheal_sandbox.state import StateDir


@dataclass
class Receiver:
    """An HTTP endpoint on 127.0.0.1 recording what SNS POSTs to it."""

    url: str
    status: list[int] = field(default_factory=lambda: [200])
    posts: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)

    def wait(self, kind: str, count: int = 1, timeout: float = 10) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [body for _, body in self.posts if body["Type"] == kind]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{count} {kind} not received in {timeout} s: {self.posts}")

    def headers_of(self, message_id: str) -> dict[str, str]:
        return next(h for h, body in self.posts if body["MessageId"] == message_id)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    record = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            record.posts.append(({k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
            self.send_response(record.status[0])
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    record.url = f"http://127.0.0.1:{server.server_address[1]}/sns"
    yield record
    server.shutdown()
    server.server_close()


@pytest.fixture
def sns(aws: RunningSandbox) -> Any:
    return aws.client("sns")


def test_http_subscription_is_pending_until_confirmed_and_gets_only_the_confirmation(
    sns: Any, receiver: Receiver
) -> None:
    """AWS: an http(s) subscription starts PendingConfirmation (Subscribe answers
    "pending confirmation", listings show "PendingConfirmation"); the endpoint gets a
    SubscriptionConfirmation with Token and SubscribeURL, and no notification is
    delivered before the subscription is confirmed."""
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    assert (
        sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=receiver.url)["SubscriptionArn"]
        == "pending confirmation"
    )
    listed = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert [s["SubscriptionArn"] for s in listed] == ["PendingConfirmation"]

    confirmation = receiver.wait("SubscriptionConfirmation")[0]
    assert confirmation["TopicArn"] == topic
    assert confirmation["Token"]
    assert "Action=ConfirmSubscription" in confirmation["SubscribeURL"]
    headers = receiver.headers_of(confirmation["MessageId"])
    assert headers["x-amz-sns-message-type"] == "SubscriptionConfirmation"
    assert headers["x-amz-sns-topic-arn"] == topic

    sns.publish(TopicArn=topic, Message="before confirmation")
    # Visiting the SubscribeURL confirms, as on AWS.
    with urllib.request.urlopen(confirmation["SubscribeURL"], timeout=5) as resp:  # noqa: S310
        assert resp.status == 200
    listed = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert listed[0]["SubscriptionArn"].startswith(topic + ":")
    sns.publish(TopicArn=topic, Message="after confirmation")

    notes = receiver.wait("Notification")
    time.sleep(0.5)  # a late first message would arrive before the second: both were queued
    notes = [body for _, body in receiver.posts if body["Type"] == "Notification"]
    assert [n["Message"] for n in notes] == ["after confirmation"]


def test_confirmed_http_endpoint_gets_the_aws_notification_format(
    aws: RunningSandbox, sns: Any, receiver: Receiver
) -> None:
    """AWS "HTTP/HTTPS notification JSON format": headers x-amz-sns-message-type,
    -message-id, -topic-arn, -subscription-arn; body Type, MessageId, TopicArn,
    Subject, Message, Timestamp, SignatureVersion, Signature, SigningCertURL,
    UnsubscribeURL."""
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    sub = sns.subscribe(
        TopicArn=topic, Protocol="http", Endpoint=receiver.url, ReturnSubscriptionArn=True
    )["SubscriptionArn"]
    token = receiver.wait("SubscriptionConfirmation")[0]["Token"]
    assert sns.confirm_subscription(TopicArn=topic, Token=token)["SubscriptionArn"] == sub

    message_id = sns.publish(TopicArn=topic, Message="hello", Subject="greeting")["MessageId"]
    body = receiver.wait("Notification")[0]
    assert list(body) == [
        "Type", "MessageId", "TopicArn", "Subject", "Message", "Timestamp",
        "SignatureVersion", "Signature", "SigningCertURL", "UnsubscribeURL",
    ]  # fmt: skip
    assert body["MessageId"] == message_id
    assert (body["Subject"], body["Message"]) == ("greeting", "hello")
    headers = receiver.headers_of(message_id)
    assert headers["x-amz-sns-message-type"] == "Notification"
    assert headers["x-amz-sns-subscription-arn"] == sub
    assert headers["content-type"] == "text/plain; charset=UTF-8"
    # and `selfheal-sandbox status` lists it next to the mailbox's deliveries
    # (counted once the endpoint's answer is in, just after the receiver saw the POST)
    [shown] = wait_for(
        "the delivery in status",
        lambda: [n for n in aws.status()["notifications"] if n["endpoint"] == receiver.url],
    )
    assert (shown["protocol"], shown["subject"]) == ("http", "greeting")
    assert shown["timestamp"] == body["Timestamp"]


def test_bad_confirmation_token_is_rejected(sns: Any, receiver: Receiver) -> None:
    """AWS ConfirmSubscription with a wrong token: InvalidParameter."""
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=receiver.url)
    receiver.wait("SubscriptionConfirmation")
    with pytest.raises(sns.exceptions.InvalidParameterException):
        sns.confirm_subscription(TopicArn=topic, Token="not-the-token")


def test_failing_endpoint_never_fails_publish(aws: RunningSandbox, sns: Any) -> None:
    """AWS: Publish does not wait for delivery; a dead endpoint fails the delivery
    (logged, retried), never the Publish call (moto would answer HTTP 500)."""
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="http", Endpoint="http://127.0.0.1:9/dead")
    started = time.monotonic()
    assert sns.publish(TopicArn=topic, Message="hello")["MessageId"]
    assert time.monotonic() - started < 2.0


@dataclass
class FakeClock:
    scale: float = 1000.0

    def utcnow(self) -> datetime:
        return datetime.now(UTC)

    def to_wall(self, aws_seconds: float) -> float:
        return aws_seconds / self.scale


@dataclass
class FakeSandbox:
    """What SnsDelivery uses of the server's Sandbox."""

    state_dir: Path
    adapter: MotoAdapter = field(default_factory=lambda: MotoAdapter("us-east-1"))
    clock: FakeClock = field(default_factory=FakeClock)
    lock: threading.RLock = field(default_factory=threading.RLock)
    routes: dict[str, Any] = field(default_factory=dict)
    info: Any = field(default_factory=lambda: SimpleNamespace(endpoint="http://127.0.0.1:4599"))

    @property
    def config(self) -> Any:
        return SimpleNamespace(state=StateDir(self.state_dir))


def test_failed_http_delivery_is_retried_per_the_default_delivery_policy(
    tmp_path: Path, receiver: Receiver
) -> None:
    """AWS "message delivery retries": HTTP 5xx is a failed attempt; the default
    HTTP/S policy retries 3 times 20 s apart (here 20 ms: clock x1000), then gives
    up; a 2xx-4xx answer ends the delivery."""
    delivery = SnsDelivery(FakeSandbox(tmp_path))  # type: ignore[arg-type]
    delivery.start()
    try:
        receiver.status[0] = 503
        delivery.enqueue(_notification(receiver.url, "m-1"))
        assert len(receiver.wait("Notification", count=4)) == 4
        deadline = time.monotonic() + 5
        while delivery.failed < 1:
            assert time.monotonic() < deadline, "delivery never gave up"
            time.sleep(0.01)
        assert len(receiver.posts) == 4  # 1 attempt + 3 retries, no more
        assert delivery.retried == 3

        receiver.status[0] = 404
        delivery.enqueue(_notification(receiver.url, "m-2"))
        receiver.wait("Notification", count=5)
        while delivery.delivered < 1:
            assert time.monotonic() < deadline, "404 not counted as delivered"
            time.sleep(0.01)
        assert delivery.retried == 3
    finally:
        delivery.stop()


def _notification(endpoint: str, message_id: str) -> Delivery:
    topic = "arn:aws:sns:us-east-1:123456789012:alerts"
    return Delivery(
        kind="Notification", protocol="http", endpoint=endpoint,
        subscription_arn=f"{topic}:1", topic_arn=topic, message_id=message_id,
        message="retry me", subject=None, timestamp=datetime.now(UTC),
    )  # fmt: skip


def test_non_loopback_endpoint_is_never_contacted(aws: RunningSandbox, sns: Any) -> None:
    """Sandbox rule: nothing is sent off the machine; a non-loopback http endpoint
    is a failed delivery (logged), and the API call still succeeds."""
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    before = aws.status()["behaviours"]["sns"]["failed"]
    sns.subscribe(TopicArn=topic, Protocol="https", Endpoint="https://example.com/hook")
    deadline = time.monotonic() + 5
    while aws.status()["behaviours"]["sns"]["failed"] == before:
        assert time.monotonic() < deadline, "no failed delivery recorded"
        time.sleep(0.1)
    assert "example.com is not a loopback address" in aws.log()


def _mails(box: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(box.glob("*.json"))] if box.is_dir() else []


def _wait_mails(box: Path, kind: str, count: int = 1, timeout: float = 10) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [m for m in _mails(box) if m["type"] == kind]
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{count} {kind} not in {box} within {timeout} s")


def test_email_needs_confirmation_then_lands_in_the_mailbox(aws: RunningSandbox, sns: Any) -> None:
    """AWS: an email subscription is confirmed by the recipient (a confirmation mail
    with a link); only then are messages emailed. The sandbox's mailbox holds one
    JSON file per message: subject, body, topic, timestamp."""
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="email", Endpoint="oncall@example.com")
    box = aws.state_dir / "mailbox" / "oncall@example.com"
    confirmation = _wait_mails(box, "SubscriptionConfirmation")[0]
    assert confirmation["subject"] == "AWS Notification - Subscription Confirmation"
    sns.publish(TopicArn=topic, Message="too early", Subject="early")

    with urllib.request.urlopen(confirmation["subscribe_url"], timeout=5) as resp:  # noqa: S310
        assert resp.status == 200
    sns.publish(TopicArn=topic, Message="disk full", Subject="ops")
    mail = _wait_mails(box, "Notification")[0]
    assert mail["subject"] == "ops"
    assert mail["body"].startswith("disk full\n")
    assert mail["topic_arn"] == topic
    assert mail["timestamp"].endswith("Z")
    time.sleep(0.3)
    assert [m["message"] for m in _mails(box) if m["type"] == "Notification"] == ["disk full"]
