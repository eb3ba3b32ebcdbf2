"""moto's ELBv2 state for the ALB behaviour (elb.py): one snapshot read, and the
hooks that make DescribeTargetHealth and the load balancer state tell the truth.

moto (elbv2/models.py, see research/moto-internals.md §2) reports every
registered running target as `healthy`, goes straight from registered to
`unused` on DeregisterTargets, keeps a terminated instance `draining` forever,
and flips a new ALB to `active` on the first describe. The hooks below hand
those answers to an `ElbHooks` implementation (the Elb behaviour) instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from moto.elbv2.models import ELBv2Backend, FakeLoadBalancer, FakeTargetGroup, elbv2_backends

Verdict = tuple[str, str | None, str | None]  # (state, reason, description)

# Test seam and escape hatch: an instance tagged with this key is reached at this
# loopback address instead of the one the EC2 behaviour gives it.
ADDRESS_TAG = "sandbox:address"


@dataclass(frozen=True)
class TargetSpec:
    id: str
    port: int
    # The EC2 state of an instance target ("running", "stopped", ...); None when
    # the id is no instance moto knows.
    instance_state: str | None
    address_tag: str | None


@dataclass(frozen=True)
class TargetGroupSpec:
    arn: str
    in_use: bool  # some listener forwards to it
    # JSON-ready, the fields of health_checks.HealthCheckSettings.
    health_check: dict[str, Any]
    deregistration_delay_s: float
    targets: tuple[TargetSpec, ...]


@dataclass(frozen=True)
class ListenerSpec:
    port: int
    protocol: str
    # JSON-ready: {"type": "forward", "target_groups": [[arn, weight], ...]},
    # {"type": "fixed-response", ...} or {"type": "redirect", ...}.
    action: dict[str, Any]


@dataclass(frozen=True)
class LoadBalancerSpec:
    arn: str
    name: str
    dns_name: str
    idle_timeout_s: float
    listeners: tuple[ListenerSpec, ...]


class ElbHooks(Protocol):
    """What the hooks ask the ALB behaviour. Called inside API requests, under
    the sandbox lock: answers must come from memory."""

    def health_verdict(
        self, tg_arn: str, target_id: str, in_use: bool, moto_state: str
    ) -> Verdict | None:
        """The verdict for a registered target; None keeps moto's."""
        ...

    def draining_verdict(self, tg_arn: str, target_id: str) -> Verdict | None: ...

    def draining_targets(self, tg_arn: str) -> list[tuple[str, int]]: ...

    def targets_registered(self, tg_arn: str, targets: list[tuple[str, int]]) -> None: ...

    def targets_deregistered(
        self, tg_arn: str, targets: list[tuple[str, int]], delay_s: float
    ) -> None: ...

    def load_balancer_ready(self, lb_arn: str) -> bool: ...


def _action(actions: list[Any]) -> dict[str, Any]:
    """The listener's default action, JSON-ready. Only the last, terminal action
    matters to the data plane (authenticate-* actions come first and are skipped)."""
    if not actions:
        return {}
    ordered = sorted(actions, key=lambda a: int(a.data.get("Order") or 0))
    data = ordered[-1].data
    kind = data.get("Type")
    if kind == "forward":
        groups = (data.get("ForwardConfig") or {}).get("TargetGroups") or []
        pairs = [[g["TargetGroupArn"], int(g.get("Weight", 1))] for g in groups]
        if data.get("TargetGroupArn"):
            pairs = [[data["TargetGroupArn"], 1]]
        return {"type": "forward", "target_groups": pairs}
    if kind == "fixed-response":
        config = data.get("FixedResponseConfig") or {}
        return {
            "type": "fixed-response",
            "status": int(config.get("StatusCode", 200)),
            "content_type": config.get("ContentType"),
            "body": config.get("MessageBody"),
        }
    if kind == "redirect":
        config = data.get("RedirectConfig") or {}
        return {
            "type": "redirect",
            "status": int(str(config.get("StatusCode", "HTTP_301")).removeprefix("HTTP_")),
            "protocol": config.get("Protocol"),
            "port": config.get("Port"),
            "host": config.get("Host"),
            "path": config.get("Path"),
            "query": config.get("Query"),
        }
    return {"type": kind}


def _health_check(tg: Any) -> dict[str, Any]:
    matcher = tg.matcher if isinstance(getattr(tg, "matcher", None), dict) else {}
    return {
        "protocol": (tg.health_check_protocol or "HTTP").upper(),
        "port": str(tg.health_check_port or "traffic-port"),
        "path": tg.health_check_path or "/",
        "interval_s": float(tg.health_check_interval_seconds),
        "timeout_s": float(tg.health_check_timeout_seconds),
        "healthy_threshold": int(tg.healthy_threshold_count),
        "unhealthy_threshold": int(tg.unhealthy_threshold_count),
        "matcher": str(matcher.get("HttpCode") or "200"),
    }


def _forwarded_groups(backend: Any) -> set[str]:
    found: set[str] = set()
    for lb in list(backend.load_balancers.values()):
        for listener in list(lb.listeners.values()):
            for rule in list(listener.rules.values()):
                for action in rule.actions:
                    found.update(backend._get_target_group_arns_from(action_data=action.data))
    return found


class Elbv2Adapter:
    """Mixin of MotoAdapter (which provides `_elbv2()` and `_ec2()`)."""

    _elbv2: Callable[[], Any]
    _ec2: Callable[[], Any]

    def elbv2_snapshot(self) -> tuple[list[LoadBalancerSpec], list[TargetGroupSpec]]:
        """Everything the data plane needs, as plain values (call under the lock)."""
        backend = self._elbv2()
        ec2 = self._ec2()
        instances = {i.id: i for i in ec2.all_instances()}
        in_use = _forwarded_groups(backend)
        balancers = [
            LoadBalancerSpec(
                arn=lb.arn,
                name=lb.name,
                dns_name=lb.dns_name,
                idle_timeout_s=float(lb.attrs.get("idle_timeout.timeout_seconds") or 60),
                listeners=tuple(
                    ListenerSpec(int(li.port), li.protocol, _action(li.default_actions))
                    for li in list(lb.listeners.values())
                ),
            )
            for lb in list(backend.load_balancers.values())
            if lb.type == "application"
        ]
        groups = []
        for tg in list(backend.target_groups.values()):
            targets = []
            for t in list(tg.targets.values()):
                instance = instances.get(t["Id"])
                tags = ec2.tags.get(t["Id"]) or {}
                targets.append(
                    TargetSpec(
                        id=t["Id"],
                        port=int(t["Port"]),
                        instance_state=instance.state if instance else None,
                        address_tag=tags.get(ADDRESS_TAG),
                    )
                )
            groups.append(
                TargetGroupSpec(
                    arn=tg.arn,
                    in_use=tg.arn in in_use,
                    health_check=_health_check(tg),
                    deregistration_delay_s=float(
                        tg.attributes.get("deregistration_delay.timeout_seconds", 300)
                    ),
                    targets=tuple(targets),
                )
            )
        return balancers, groups

    def install_elbv2_hooks(self, hooks: ElbHooks) -> None:
        """Class-level wraps, once per process (see adapter.patch_method)."""
        # adapter/__init__.py imports this module for its mixin: import back late.
        from . import patch_method  # noqa: PLC0415

        def health_for(original: Callable) -> Callable:
            def wrapper(tg: Any, target: dict[str, Any], ec2_backend: Any) -> Any:
                health = original(tg, target, ec2_backend)
                if target["Id"] in tg.targets:
                    backend = _backend_of(tg)
                    in_use = tg.arn in _forwarded_groups(backend)
                    verdict = hooks.health_verdict(tg.arn, target["Id"], in_use, health.status)
                else:
                    verdict = hooks.draining_verdict(tg.arn, target["Id"])
                if verdict is not None:
                    health.status, health.reason, health.description = verdict
                return health

            return wrapper

        def describe_target_health(original: Callable) -> Callable:
            # With no Targets given, AWS lists the draining targets too.
            def wrapper(backend: Any, target_group_arn: str, targets: list[Any]) -> Any:
                if not targets and target_group_arn in backend.target_groups:
                    tg = backend.target_groups[target_group_arn]
                    targets = list(tg.targets.values()) + [
                        {"Id": target_id, "Port": port}
                        for target_id, port in hooks.draining_targets(target_group_arn)
                        if target_id not in tg.targets
                    ]
                return original(backend, target_group_arn, targets)

            return wrapper

        def register(original: Callable) -> Callable:
            def wrapper(tg: Any, targets: list[dict[str, Any]]) -> Any:
                result = original(tg, targets)
                hooks.targets_registered(
                    tg.arn, [(t["Id"], int(tg.targets[t["Id"]]["Port"])) for t in targets]
                )
                return result

            return wrapper

        def deregister(original: Callable) -> Callable:
            def wrapper(tg: Any, targets: list[dict[str, Any]]) -> Any:
                gone = [
                    (t["Id"], int(tg.targets[t["Id"]]["Port"]))
                    for t in targets
                    if t["Id"] in tg.targets
                ]
                result = original(tg, targets)
                hooks.targets_deregistered(tg.arn, gone, _delay(tg))
                return result

            return wrapper

        # A terminated instance is deregistered: moto parks it in terminated_targets
        # as draining forever; here it drains for the delay like any other.
        def deregister_terminated(original: Callable) -> Callable:
            def wrapper(tg: Any, instance_ids: list[str]) -> Any:
                gone = [(i, int(t["Port"])) for i, t in tg.targets.items() if i in instance_ids]
                result = original(tg, instance_ids)
                for target_id, _ in gone:
                    tg.deregistered_targets[target_id] = tg.terminated_targets.pop(target_id)
                hooks.targets_deregistered(tg.arn, gone, _delay(tg))
                return result

            return wrapper

        def activate(original: Callable) -> Callable:
            # "active" only once the data plane listens for this load balancer.
            def wrapper(lb: Any) -> Any:
                if lb.state == "provisioning" and not hooks.load_balancer_ready(lb.arn):
                    return None
                return original(lb)

            return wrapper

        patch_method(FakeTargetGroup, "health_for", health_for)
        patch_method(ELBv2Backend, "describe_target_health", describe_target_health)
        patch_method(FakeTargetGroup, "register", register)
        patch_method(FakeTargetGroup, "deregister", deregister)
        patch_method(FakeTargetGroup, "deregister_terminated_instances", deregister_terminated)
        patch_method(FakeLoadBalancer, "activate", activate)


def _delay(tg: Any) -> float:
    return float(tg.attributes.get("deregistration_delay.timeout_seconds", 300))


def _backend_of(tg: Any) -> Any:
    return elbv2_backends[tg.account_id][tg.region_name]
