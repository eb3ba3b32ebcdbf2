"""`selfheal-sandbox mailbox`: the email SNS delivered, and the confirmation links in it.

The sandbox's SNS writes every email to `<state>/mailbox/<address>/<time>-<id>.json`
(see sns.py). As on AWS, an email subscription stays PendingConfirmation, and gets
nothing but the confirmation email, until its recipient opens the SubscribeURL in it.
`--confirm` does what that recipient would: an HTTP GET of the link, for every email
subscription the running sandbox still reports pending. Only links to the sandbox's own
endpoint (127.0.0.1) are followed.

Reading the mailbox needs only the files; confirming needs the sandbox running.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .control import probe
from .state import StateDir

CONFIRMATION = "SubscriptionConfirmation"
EMAIL_PROTOCOLS = ("email", "email-json")
# SNS writes a confirmation email right after Subscribe, from its delivery thread;
# `--confirm` right after a playbook gives it this long (wall seconds) to arrive.
MAIL_WAIT_S = 5.0
LINK_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Mail:
    """One delivered email, as sns.py wrote it."""

    timestamp: str  # ISO 8601 UTC with milliseconds: sorts as time does
    address: str
    type: str  # "Notification" | "SubscriptionConfirmation"
    subject: str
    message: str
    topic_arn: str
    subscription_arn: str
    message_id: str
    subscribe_url: str | None
    file: Path

    @classmethod
    def load(cls, path: Path) -> Mail:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            timestamp=raw["timestamp"],
            address=raw["to"],
            type=raw["type"],
            subject=raw["subject"],
            message=raw["message"],
            topic_arn=raw["topic_arn"],
            subscription_arn=raw["subscription_arn"],
            message_id=raw["message_id"],
            subscribe_url=raw.get("subscribe_url"),
            file=path,
        )

    @property
    def first_line(self) -> str:
        return next(iter(self.message.splitlines()), "")

    def to_json(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp,
            "address": self.address,
            "type": self.type,
            "subject": self.subject,
            "first_line": self.first_line,
            "message": self.message,
            "topic_arn": self.topic_arn,
            "subscription_arn": self.subscription_arn,
            "message_id": self.message_id,
            "file": str(self.file),
        }


@dataclass(frozen=True)
class Confirmed:
    address: str
    topic_arn: str
    subscription_arn: str

    def to_json(self) -> dict[str, str]:
        return {
            "address": self.address,
            "topic_arn": self.topic_arn,
            "subscription_arn": self.subscription_arn,
        }


def read_mailbox(state: StateDir) -> tuple[list[Mail], list[str]]:
    """Every address's mail, oldest first, and a note per file that is not a mail."""
    mails, skipped = [], []
    for path in state.mailbox_dir.glob("*/*.json"):
        try:
            mails.append(Mail.load(path))
        except (OSError, ValueError, KeyError, TypeError) as e:
            skipped.append(f"{path}: not a sandbox mail ({type(e).__name__}: {e})")
    mails.sort(key=lambda m: (m.timestamp, m.file.name))
    return mails, skipped


def _pending_email_subscriptions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    subscriptions = status.get("behaviours", {}).get("sns", {}).get("subscriptions", [])
    return {
        s["subscription_arn"]: s
        for s in subscriptions
        if s["pending_confirmation"] and s["protocol"] in EMAIL_PROTOCOLS
    }


def open_link(url: str, endpoint: str) -> None:
    """GET a SubscribeURL, as a mail client opens a link; raises ValueError if the link
    leads anywhere but the sandbox, OSError if the sandbox refuses it."""
    if not url.startswith(endpoint.rstrip("/") + "/"):
        raise ValueError(
            f"link {url} does not lead to the sandbox at {endpoint}; "
            "only the sandbox's own (loopback) links are followed"
        )
    with urllib.request.urlopen(url, timeout=LINK_TIMEOUT_S):  # noqa: S310 - checked above
        pass


def confirm_pending(state: StateDir) -> tuple[list[Confirmed], list[str]]:
    """Open the confirmation link of every email subscription still pending; what was
    confirmed and what went wrong."""
    found = probe(state)
    if found.status is None or found.info is None:
        why = f" ({found.problem})" if found.problem else ""
        return [], [f"the sandbox is not running{why}: nothing can be confirmed"]
    endpoint = found.info.endpoint
    status: dict[str, Any] | None = found.status
    deadline = time.monotonic() + MAIL_WAIT_S
    while True:
        pending = _pending_email_subscriptions(status or {})
        # The newest confirmation email per subscription (AWS resends while pending).
        links = {
            m.subscription_arn: m
            for m in read_mailbox(state)[0]
            if m.type == CONFIRMATION and m.subscription_arn in pending and m.subscribe_url
        }
        if len(links) == len(pending) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
        status = probe(state).status
    confirmed, problems = [], []
    for arn, sub in pending.items():
        mail = links.get(arn)
        if mail is None or mail.subscribe_url is None:
            problems.append(
                f"{sub['endpoint']}: no confirmation email for {arn} "
                f"in {state.mailbox_dir} within {MAIL_WAIT_S:g} s"
            )
            continue
        try:
            open_link(mail.subscribe_url, endpoint)
        except urllib.error.HTTPError as e:
            problems.append(
                f"{mail.address}: the sandbox refused {mail.subscribe_url}: HTTP {e.code}"
            )
        except (OSError, ValueError) as e:
            problems.append(f"{mail.address}: {e}")
        else:
            confirmed.append(Confirmed(mail.address, mail.topic_arn, arn))
    return confirmed, problems


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_text(
    state: StateDir,
    mails: list[Mail],
    confirmed: list[Confirmed] | None,
    failed: bool = False,
    width: int = 100,
) -> str:
    """`confirmed` is None when nothing was to be confirmed; `failed` when confirming
    went wrong (the errors went to stderr)."""
    lines = []
    if confirmed is not None:
        if not confirmed:
            why = "" if failed else " (no email subscription awaits confirmation)"
            lines.append(f"confirmed: none{why}")
        for c in confirmed:
            topic = c.topic_arn.rsplit(":", 1)[-1]
            lines.append(f"confirmed: {c.address} on topic {topic}  ({c.subscription_arn})")
    count = f"{len(mails)} message" + ("" if len(mails) == 1 else "s")
    lines.append(f"mailbox {state.mailbox_dir}: {count}, newest last")
    for m in mails:
        lines.append(f"  {m.timestamp}  {m.address}  {m.type}")
        lines.append(f"    {_clip(m.subject, width - 4)}")
        lines.append(f"    {_clip(m.first_line, width - 4)}")
    return "\n".join(lines)


def show(state: StateDir, confirm: bool, as_json: bool) -> int:
    confirmed, problems = confirm_pending(state) if confirm else (None, [])
    mails, skipped = read_mailbox(state)
    for note in skipped:
        print(f"note: {note}", file=sys.stderr)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if as_json:
        doc = {
            "mailbox": str(state.mailbox_dir),
            "confirmed": [c.to_json() for c in confirmed or []],
            "messages": [m.to_json() for m in mails],
        }
        print(json.dumps(doc, indent=2))
    else:
        width = max(shutil.get_terminal_size().columns, 40)
        print(render_text(state, mails, confirmed, bool(problems), width))
    return 1 if problems else 0
