"""moto's SNS, as the delivery behaviour sees it (mixin of `MotoAdapter`).

moto confirms every subscription at once, POSTs http(s) notifications inside the
Publish request (a dead endpoint fails Publish with HTTP 500; a subscriber that
calls the API back would deadlock on the sandbox lock) and drops email. The hooks
here make subscriptions to http, https, email and email-json endpoints wait for
confirmation as on AWS, and hand every delivery to the sandbox (`deliver`), which
sends it later from its own thread. sqs, lambda and sms keep moto's behaviour.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from moto.core.responses import ActionResult
from moto.sns.exceptions import SNSInvalidParameter
from moto.sns.models import SNSBackend, Subscription, sns_backends
from moto.sns.responses import SNSResponse

log = logging.getLogger(__name__)

# Protocols whose endpoint must confirm the subscription (AWS: http, https, email,
# email-json; same-account sqs and lambda subscriptions need no confirmation).
CONFIRMED_BY_ENDPOINT = ("http", "https", "email", "email-json")
_TOKEN_ATTR = "selfheal_token"  # noqa: S105 - an attribute name, not a secret
PENDING_ARN = "PendingConfirmation"


@dataclass(frozen=True)
class Delivery:
    """One message for one endpoint: a Notification or a SubscriptionConfirmation."""

    kind: str  # "Notification" | "SubscriptionConfirmation"
    protocol: str
    endpoint: str
    subscription_arn: str
    topic_arn: str
    message_id: str
    message: str
    subject: str | None
    timestamp: datetime
    token: str | None = None


@dataclass(frozen=True)
class SubscriptionView:
    arn: str
    topic_arn: str
    protocol: str
    endpoint: str
    pending: bool


def _pending(sub: Any) -> bool:
    return str(sub.attributes.get("PendingConfirmation", False)).lower() == "true"


def _confirm(sub: Any) -> None:
    sub.attributes["PendingConfirmation"] = "false"
    sub.attributes["ConfirmationWasAuthenticated"] = "true"
    sub.confirmed = True


def _confirm_by_token(backend: Any, topic_arn: str, token: str | None) -> str | None:
    for sub in list(backend.subscriptions.values()):
        if sub.topic.arn == topic_arn and token and getattr(sub, _TOKEN_ATTR, None) == token:
            _confirm(sub)
            return sub.arn
    return None


class _ListedSubscription:
    """What List* shows: a pending subscription's ARN reads "PendingConfirmation"."""

    def __init__(self, sub: Any) -> None:
        self.SubscriptionArn = PENDING_ARN if _pending(sub) else sub.arn
        self.Owner = sub.owner
        self.Protocol = sub.protocol
        self.Endpoint = sub.endpoint
        self.TopicArn = sub.topic.arn


class SnsAdapter:
    """Mixed into `MotoAdapter` (which provides account_id and region)."""

    account_id: str
    region: str

    def _sns(self) -> Any:
        return sns_backends[self.account_id][self.region]

    def subscriptions(self) -> list[SubscriptionView]:
        return [
            SubscriptionView(s.arn, s.topic.arn, s.protocol, s.endpoint, _pending(s))
            for s in list(self._sns().subscriptions.values())
        ]

    def topic_exists(self, topic_arn: str) -> bool:
        return topic_arn in self._sns().topics

    def publish(self, topic_arn: str, message: str, subject: str | None) -> str:
        """Publish as the API does (the delivery hook queues the deliveries)."""
        return self._sns().publish(message, arn=topic_arn, subject=subject)

    def confirm_subscription(self, topic_arn: str, token: str) -> str | None:
        """ConfirmSubscription by token; the subscription ARN, or None for a bad token."""
        return _confirm_by_token(self._sns(), topic_arn, token)

    def unsubscribe(self, subscription_arn: str) -> bool:
        return self._sns().subscriptions.pop(subscription_arn, None) is not None

    def install_sns_hooks(
        self,
        now: Callable[[], datetime],
        deliver: Callable[[Delivery], None],
        new_message_id: Callable[[], str],
    ) -> None:
        """Process-wide hooks (class level). `deliver` is called inside the API
        request, under the sandbox lock: it must only queue."""
        from . import patch_method  # noqa: PLC0415 - the package imports this module

        def send_confirmation(sub: Any) -> None:
            token = getattr(sub, _TOKEN_ATTR, None) or secrets.token_hex(64)
            setattr(sub, _TOKEN_ATTR, token)
            topic = sub.topic
            deliver(
                Delivery(
                    kind="SubscriptionConfirmation",
                    protocol=sub.protocol,
                    endpoint=sub.endpoint,
                    subscription_arn=sub.arn,
                    topic_arn=topic.arn,
                    message_id=new_message_id(),
                    message=(
                        f"You have chosen to subscribe to the topic {topic.arn}.\n"
                        "To confirm the subscription, visit the SubscribeURL included "
                        "in this message."
                    ),
                    subject="AWS Notification - Subscription Confirmation",
                    timestamp=now(),
                    token=token,
                )
            )

        def subscribe(original: Callable) -> Callable:
            def wrapper(backend: Any, topic_arn: str, endpoint: str, protocol: str) -> Any:
                existing = backend._find_subscription(topic_arn, endpoint, protocol)
                sub = original(backend, topic_arn, endpoint, protocol)
                if protocol not in CONFIRMED_BY_ENDPOINT:
                    return sub
                if existing is None:
                    sub.attributes["PendingConfirmation"] = "true"
                    sub.attributes["ConfirmationWasAuthenticated"] = "false"
                    sub.confirmed = False
                # AWS sends (again) a confirmation while the subscription is pending.
                if _pending(sub):
                    send_confirmation(sub)
                return sub

            return wrapper

        def publish(original: Callable) -> Callable:
            def wrapper(sub: Any, message: str, message_id: str, *args: Any, **kwargs: Any) -> Any:
                if sub.protocol not in CONFIRMED_BY_ENDPOINT:
                    return original(sub, message, message_id, *args, **kwargs)
                matcher = sub._filter_policy_matcher
                if matcher is not None and not matcher.matches(
                    kwargs.get("message_attributes"), message
                ):
                    return None
                if _pending(sub):
                    return None  # AWS delivers only to confirmed subscriptions
                if kwargs.get("message_structure") == "json":
                    message = sub._parse_message_structure(message, sub.protocol)
                deliver(
                    Delivery(
                        kind="Notification",
                        protocol=sub.protocol,
                        endpoint=sub.endpoint,
                        subscription_arn=sub.arn,
                        topic_arn=sub.topic.arn,
                        message_id=message_id,
                        message=message,
                        subject=kwargs.get("subject"),
                        timestamp=now(),
                    )
                )
                return None

            return wrapper

        patch_method(SNSBackend, "subscribe", subscribe)
        patch_method(Subscription, "publish", publish)
        patch_method(SNSResponse, "subscribe", _subscribe_response)
        patch_method(SNSResponse, "list_subscriptions", _listing)
        patch_method(SNSResponse, "list_subscriptions_by_topic", _listing)
        # moto's ConfirmSubscription checks no token and confirms nothing.
        SNSResponse.confirm_subscription = _confirm_subscription  # type: ignore[method-assign]


def _subscribe_response(original: Callable) -> Callable:
    def wrapper(response: Any) -> Any:
        result = original(response)
        arn = result.result["SubscriptionArn"]
        sub = response.backend.subscriptions.get(arn)
        wants_arn = str(response._get_param("ReturnSubscriptionArn")).lower() == "true"
        if sub is not None and _pending(sub) and not wants_arn:
            # AWS: "pending confirmation" unless ReturnSubscriptionArn is true.
            return ActionResult({"SubscriptionArn": "pending confirmation"})
        return result

    return wrapper


def _listing(original: Callable) -> Callable:
    def wrapper(response: Any) -> Any:
        result = original(response)
        doc = dict(result.result)
        doc["Subscriptions"] = [_ListedSubscription(s) for s in doc["Subscriptions"]]
        return ActionResult(doc)

    return wrapper


def _confirm_subscription(response: Any) -> ActionResult:
    topic_arn = response._get_param("TopicArn")
    if topic_arn not in response.backend.topics:
        raise SNSInvalidParameter("Invalid parameter: Topic does not exist")
    arn = _confirm_by_token(response.backend, topic_arn, response._get_param("Token"))
    if arn is None:
        raise SNSInvalidParameter("Invalid parameter: Token")
    return ActionResult({"SubscriptionArn": arn})
