"""`selfheal-sandbox mailbox`: the email SNS delivered, listed, and confirmed as its
recipient would confirm it. Each test mails its own address: the mailbox outlives the
moto reset between tests."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import RunningSandbox, run_cli

from selfheal_sandbox.mailbox import CONFIRMATION, Mail, open_link, read_mailbox
from selfheal_sandbox.state import StateDir


@pytest.fixture
def sns(aws: RunningSandbox) -> Any:
    return aws.client("sns")


def _mailbox_json(aws: RunningSandbox, *flags: str) -> dict[str, Any]:
    result = run_cli("mailbox", "--json", *flags, "--state-dir", str(aws.state_dir))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _to(doc: dict[str, Any], address: str) -> list[dict[str, Any]]:
    return [m for m in doc["messages"] if m["address"] == address]


def _wait_mail(aws: RunningSandbox, address: str, kind: str, timeout: float = 10) -> Mail:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mails, _ = read_mailbox(StateDir(aws.state_dir))
        found = [m for m in mails if m.address == address and m.type == kind]
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError(f"no {kind} for {address} within {timeout} s")


def test_email_subscription_is_pending_and_gets_nothing_but_the_confirmation(
    aws: RunningSandbox, sns: Any
) -> None:
    """AWS: an email subscription stays PendingConfirmation until its recipient opens
    the SubscribeURL of the confirmation email, and SNS emails it nothing else before:
    a Publish in between is not delivered. `mailbox` lists the confirmation email."""
    address = "pending@example.com"
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="email", Endpoint=address)
    listed = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert [s["SubscriptionArn"] for s in listed] == ["PendingConfirmation"]

    _wait_mail(aws, address, CONFIRMATION)
    sns.publish(TopicArn=topic, Message="too early", Subject="early")
    time.sleep(0.5)  # a delivery would be written within milliseconds
    mails = _to(_mailbox_json(aws), address)
    assert [m["type"] for m in mails] == [CONFIRMATION]
    assert mails[0]["subject"] == "AWS Notification - Subscription Confirmation"
    assert mails[0]["first_line"] == f"You have chosen to subscribe to the topic {topic}."
    subs = aws.status()["behaviours"]["sns"]["subscriptions"]
    assert [(s["endpoint"], s["pending_confirmation"]) for s in subs] == [(address, True)]


def test_mailbox_confirm_opens_the_subscribe_url_as_the_recipient_would(
    aws: RunningSandbox, sns: Any
) -> None:
    """AWS: opening the SubscribeURL confirms the subscription, which then lists with
    its ARN. `mailbox --confirm` opens it for every pending email subscription (waiting
    for the confirmation email if SNS has not written it yet), says which it confirmed,
    and on a second run finds nothing left to confirm."""
    address = "confirm@example.com"
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="email", Endpoint=address)

    result = run_cli("mailbox", "--confirm", "--state-dir", str(aws.state_dir))
    assert result.returncode == 0, result.stderr
    listed = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    arn = listed[0]["SubscriptionArn"]
    assert arn.startswith(topic + ":")
    assert f"confirmed: {address} on topic alerts  ({arn})" in result.stdout
    assert "confirmed through its SubscribeURL" in aws.log()

    again = _mailbox_json(aws, "--confirm")
    assert again["confirmed"] == []


def test_notification_after_confirmation_lands_in_the_mailbox_newest_last(
    aws: RunningSandbox, sns: Any
) -> None:
    """AWS: once the subscription is confirmed, every Publish to the topic is emailed
    to the address with its subject and message. `mailbox --json` lists it after the
    confirmation (newest last); the text listing shows its subject and first line."""
    address = "notified@example.com"
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="email", Endpoint=address)
    confirmed = _mailbox_json(aws, "--confirm")["confirmed"]
    assert [c["address"] for c in confirmed] == [address]

    message = "Threshold Crossed: 1 datapoint [1.0] >= 1.0\nsecond line"
    message_id = sns.publish(TopicArn=topic, Message=message, Subject="ALARM: unhealthy")[
        "MessageId"
    ]
    _wait_mail(aws, address, "Notification")
    doc = _mailbox_json(aws)
    assert [m["timestamp"] for m in doc["messages"]] == sorted(
        m["timestamp"] for m in doc["messages"]
    )
    mails = _to(doc, address)
    assert [m["type"] for m in mails] == [CONFIRMATION, "Notification"]
    note = mails[-1]
    assert (note["subject"], note["message"], note["message_id"]) == (
        "ALARM: unhealthy",
        message,
        message_id,
    )
    assert note["first_line"] == "Threshold Crossed: 1 datapoint [1.0] >= 1.0"
    assert Path(note["file"]).parent == aws.state_dir / "mailbox" / address

    text = run_cli("mailbox", "--state-dir", str(aws.state_dir)).stdout
    assert "ALARM: unhealthy" in text
    assert "Threshold Crossed: 1 datapoint [1.0] >= 1.0" in text
    assert "second line" not in text


def test_confirm_needs_a_running_sandbox_and_says_so(tmp_path: Path) -> None:
    """Reading the mailbox needs only its files; confirming opens a link the sandbox
    answers, so without a running sandbox it fails and says why."""
    listing = run_cli("mailbox", "--state-dir", str(tmp_path))
    assert listing.returncode == 0, listing.stderr
    assert "0 messages" in listing.stdout

    result = run_cli("mailbox", "--confirm", "--state-dir", str(tmp_path))
    assert result.returncode == 1
    assert "sandbox is not running" in result.stderr


@pytest.mark.parametrize(
    "link",
    [
        "http://example.com/_sandbox/sns/?Action=ConfirmSubscription",
        "http://127.0.0.1:4599.example.com/_sandbox/sns/?Action=ConfirmSubscription",
        "http://127.0.0.1:4600/_sandbox/sns/?Action=ConfirmSubscription",
    ],
)
def test_confirm_follows_only_links_to_the_sandbox(link: str) -> None:
    """Sandbox rule: nothing leaves the machine; a link in a mail is opened only when
    it leads to the sandbox's own loopback endpoint."""
    with pytest.raises(ValueError, match="only the sandbox's own"):
        open_link(link, "http://127.0.0.1:4599")
