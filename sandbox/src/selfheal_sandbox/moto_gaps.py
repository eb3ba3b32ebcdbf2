"""moto 5.2.5 gaps the sandbox closes, so the Ansible roles stay written for AWS.

Each fix names what moto lacks and what AWS does, and is installed at class level
(moto's files are never edited). These functions are moto-level code: they run
inside moto's request handling and work on the moto objects it hands them.
Remove a fix once the pinned moto gets it right.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moto.autoscaling.exceptions import ValidationError
from moto.autoscaling.models import FakeAutoScalingGroup
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import ActionResult, EmptyResult
from moto.ec2.exceptions import (
    InvalidLaunchTemplateVersionNotFound,
    InvalidParameterCombination,
    MissingParameterError,
)
from moto.ec2.models.amis import AmiBackend
from moto.ec2.models.launch_templates import (
    LaunchTemplate,
    LaunchTemplateBackend,
    LaunchTemplateVersion,
)
from moto.ec2.responses.launch_templates import LaunchTemplates
from moto.elbv2.models import FakeLoadBalancer

from .adapter import patch_method

# ------------------------------------------------------------------------------
# a. CreateImage with TagSpecifications of ResourceType "snapshot".
# moto: AmiBackend.create_image raises NotImplementedError (HTTP 500) for it.
# AWS: "ResourceType snapshot: tags all snapshots created by the image"; image
# tags go on the image. amazon.aws.ec2_ami sends both whenever `tags:` is set.


def _create_image_tagging_snapshots(original: Callable) -> Callable:
    def create_image(
        backend: Any,
        instance_id: str,
        name: str,
        description: str,
        tag_specifications: list[dict[str, Any]],
    ) -> Any:
        snapshot_tags: dict[str, str] = {}
        other_specs = []
        for spec in tag_specifications or []:
            if spec.get("ResourceType") == "snapshot":
                snapshot_tags.update({t["Key"]: t["Value"] for t in spec.get("Tags", [])})
            else:
                other_specs.append(spec)
        ami = original(backend, instance_id, name, description, tag_specifications=other_specs)
        if snapshot_tags:
            backend.create_tags([ami.ebs_snapshot.id], snapshot_tags)
        return ami

    return create_image


# ------------------------------------------------------------------------------
# b. DisableMetricsCollection.
# moto: not implemented (NotImplementedError, HTTP 500).
# AWS: disables the listed group metrics, or all of them when Metrics is
# omitted. amazon.aws.autoscaling_group calls it on every update when
# metrics_collection is false (its default).


def disable_metrics_collection(self: AutoScalingResponse) -> EmptyResult:
    group_name = self._get_param("AutoScalingGroupName")
    metrics = self._get_param("Metrics")
    groups = self.autoscaling_backend.describe_auto_scaling_groups([group_name])
    if not groups:
        # Same wording moto uses for the other group actions.
        raise ValidationError(
            f"AutoScalingGroup name not found - AutoScalingGroup '{group_name}' not found"
        )
    group = groups[0]
    group.metrics = [m for m in group.metrics if metrics and m not in metrics]
    return EmptyResult()


def _group(response: AutoScalingResponse) -> Any:
    group_name = response._get_param("AutoScalingGroupName")
    groups = response.autoscaling_backend.describe_auto_scaling_groups([group_name])
    if not groups:
        # Same wording moto uses for the other group actions.
        raise ValidationError(
            f"AutoScalingGroup name not found - AutoScalingGroup '{group_name}' not found"
        )
    return groups[0]


# ------------------------------------------------------------------------------
# f. Put/Describe/DeleteNotificationConfiguration(s).
# moto: not implemented (NotImplementedError, HTTP 500).
# AWS: a group has one configuration per SNS topic, each with its notification
# types; Put replaces the types for that topic. amazon.aws.autoscaling_group
# calls Put on every run when notification_topic is set. The sandbox keeps them
# on the group object, where its notifier (a later issue) reads them.

NOTIFICATIONS = "_selfheal_notification_configurations"


def notification_configurations(group: Any) -> dict[str, list[str]]:
    """Topic ARN -> notification types of one moto group (created on first use)."""
    if not hasattr(group, NOTIFICATIONS):
        setattr(group, NOTIFICATIONS, {})
    return getattr(group, NOTIFICATIONS)


def put_notification_configuration(self: AutoScalingResponse) -> EmptyResult:
    group = _group(self)
    types = self._get_param("NotificationTypes", [])
    notification_configurations(group)[self._get_param("TopicARN")] = list(types)
    return EmptyResult()


def delete_notification_configuration(self: AutoScalingResponse) -> EmptyResult:
    notification_configurations(_group(self)).pop(self._get_param("TopicARN"), None)
    return EmptyResult()


def describe_notification_configurations(self: AutoScalingResponse) -> ActionResult:
    names = self._get_param("AutoScalingGroupNames", [])
    groups = self.autoscaling_backend.describe_auto_scaling_groups(names)
    return ActionResult(
        {
            "NotificationConfigurations": [
                {"AutoScalingGroupName": group.name, "TopicARN": topic, "NotificationType": kind}
                for group in groups
                for topic, kinds in notification_configurations(group).items()
                for kind in kinds
            ]
        }
    )


# ------------------------------------------------------------------------------
# c. DeleteLaunchTemplateVersions.
# moto: not implemented (NotImplementedError, HTTP 500).
# AWS: deletes the given versions, except the default one; reports each version
# as successfully or unsuccessfully deleted instead of failing the call; version
# numbers are never reused. amazon.aws.ec2_launch_template state=absent calls it
# first whenever the template has more than one version.
#
# moto finds version N at index N-1 of template.versions, so a deleted version
# stays in the list as a tombstone and is hidden from every reader below.

_DELETED = "_selfheal_deleted"


def _is_deleted(version: LaunchTemplateVersion) -> bool:
    return getattr(version, _DELETED, False)


def _live_versions(template: LaunchTemplate) -> list[LaunchTemplateVersion]:
    return [v for v in template.versions if not _is_deleted(v)]


def _get_version_skipping_deleted(original: Callable) -> Callable:
    def get_version(template: LaunchTemplate, num: Any) -> LaunchTemplateVersion:
        if str(num).lower() == "$latest":
            return _live_versions(template)[-1]
        version = original(template, num)
        if _is_deleted(version):
            raise InvalidLaunchTemplateVersionNotFound(template_id=template.id, version=num)
        return version

    return get_version


def _latest_live_version(_original: Callable) -> Callable:
    def latest_version(template: LaunchTemplate) -> LaunchTemplateVersion:
        # The default version can never be deleted, so one live version remains.
        return _live_versions(template)[-1]

    return latest_version


def _describe_versions_skipping_deleted(original: Callable) -> Callable:
    def describe_launch_template_versions(backend: Any, *args: Any, **kwargs: Any) -> list:
        return [(t, v) for t, v in original(backend, *args, **kwargs) if not _is_deleted(v)]

    return describe_launch_template_versions


def _modify_refusing_deleted_default(original: Callable) -> Callable:
    def modify_launch_template(
        backend: Any,
        default_version: str,
        template_name: str | None = None,
        template_id: str | None = None,
    ) -> Any:
        # Checked before moto changes anything: a deleted version cannot become default.
        tid = (
            backend.launch_template_name_to_ids.get(template_name) if template_name else template_id
        )
        template = backend.launch_templates.get(tid) if tid else None
        if template is not None and str(default_version).isdigit():
            index = int(default_version) - 1
            if 0 <= index < len(template.versions) and _is_deleted(template.versions[index]):
                raise InvalidLaunchTemplateVersionNotFound(version=default_version)
        return original(backend, default_version, template_name, template_id)

    return modify_launch_template


def delete_launch_template_versions(self: LaunchTemplates) -> ActionResult:
    name = self._get_param("LaunchTemplateName")
    template_id = self._get_param("LaunchTemplateId")
    requested = [str(v) for v in self._get_param("Versions", [])]
    self.error_on_dryrun()
    if name and template_id:
        raise InvalidParameterCombination(
            "You must specify either the launch template ID or the launch template name, "
            "but not both."
        )
    if not name and not template_id:
        raise MissingParameterError("launch template ID or launch template name")
    backend = self.ec2_backend
    template = (
        backend.get_launch_template_by_name(name)
        if name
        else backend.get_launch_template(template_id)
    )
    by_number = {str(v.number): v for v in _live_versions(template)}
    deleted, refused = [], []
    for number in requested:
        item = {
            "LaunchTemplateId": template.id,
            "LaunchTemplateName": template.name,
            "VersionNumber": int(number) if number.isdigit() else None,
        }
        version = by_number.get(number)
        if version is None:
            error = {
                "Code": "launchTemplateVersionDoesNotExist",
                "Message": "The specified launch template version does not exist.",
            }
            refused.append({**item, "ResponseError": error})
        elif template.is_default(version):
            error = {
                "Code": "unexpectedError",
                "Message": "Cannot delete the default version of a launch template.",
            }
            refused.append({**item, "ResponseError": error})
        else:
            setattr(version, _DELETED, True)
            by_number.pop(number)
            deleted.append(item)
    return ActionResult(
        {
            "SuccessfullyDeletedLaunchTemplateVersions": deleted,
            "UnsuccessfullyDeletedLaunchTemplateVersions": refused,
        }
    )


# ------------------------------------------------------------------------------
# d. Launch-template tags leaking into LaunchTemplateData.
# moto: CreateLaunchTemplate appends the template's own tags as a TagSpecifications
# entry {"ResourceType": "launch-template"} to version 1's LaunchTemplateData.
# AWS: those tags belong to the template (DescribeLaunchTemplates "Tags") and
# never appear in LaunchTemplateData. amazon.aws.ec2_launch_template compares
# LaunchTemplateData and creates a needless version 2 on its second run.
# Fixed where moto stores the version, so every reader sees AWS's shape.


def _create_launch_template_without_own_tags(original: Callable) -> Callable:
    def create_launch_template(
        backend: Any,
        name: str,
        description: str,
        template_data: dict[str, Any],
        tag_spec: dict[str, Any],
    ) -> Any:
        specs = template_data.get("TagSpecifications")
        if specs is not None:
            template_data = dict(template_data)
            kept = [s for s in specs if s.get("ResourceType") != "launch-template"]
            if kept:
                template_data["TagSpecifications"] = kept
            else:
                del template_data["TagSpecifications"]
        return original(backend, name, description, template_data, tag_spec)

    return create_launch_template


# ------------------------------------------------------------------------------
# e. Attributes of a new Application Load Balancer.
# moto: starts ALBs with only 4 attributes ("idle_timeout.timeout_seconds" is
# commented out "for TF compatibility"), so amazon.aws.elb_application_lb fails
# with KeyError 'idle_timeout_timeout_seconds' when idle_timeout is set.
# AWS: DescribeLoadBalancerAttributes returns every attribute with its default
# (API_LoadBalancerAttribute: idle timeout 60 s, HTTP/2 on, cross-zone always on).

ALB_DEFAULT_ATTRIBUTES = {
    "access_logs.s3.enabled": "false",
    "client_keep_alive.seconds": "3600",
    "idle_timeout.timeout_seconds": "60",
    "load_balancing.cross_zone.enabled": "true",
    "routing.http.desync_mitigation_mode": "defensive",
    "routing.http.drop_invalid_header_fields.enabled": "false",
    "routing.http.preserve_host_header.enabled": "false",
    "routing.http.x_amzn_tls_version_and_cipher_suite.enabled": "false",
    "routing.http.xff_client_port.enabled": "false",
    "routing.http.xff_header_processing.mode": "append",
    "routing.http2.enabled": "true",
    "waf.fail_open.enabled": "false",
}


def _load_balancer_with_default_attributes(original: Callable) -> Callable:
    def init(load_balancer: Any, *args: Any, **kwargs: Any) -> None:
        original(load_balancer, *args, **kwargs)
        if load_balancer.type == "application":
            load_balancer.attrs = {**ALB_DEFAULT_ATTRIBUTES, **load_balancer.attrs}
            load_balancer.attrs["load_balancing.cross_zone.enabled"] = "true"

    return init


# ------------------------------------------------------------------------------
# g. Order of an Auto Scaling group's tags.
# moto: returns them in insertion order. AWS lists them sorted by key (not
# stated in the API reference; amazon.aws.autoscaling_group relies on it: it
# compares the group before and after an update as ordered lists), so with
# insertion order every re-run reports "changed".


def _sorted_tags_property(original: property) -> property:
    def set_tags(group: Any, tags: list[dict[str, Any]]) -> None:
        original.fset(group, sorted(tags, key=lambda tag: tag["Key"]))

    return property(original.fget, set_tags)


# ------------------------------------------------------------------------------


def install() -> None:
    """Install every fix (idempotent: patch_method wraps each method once)."""
    patch_method(AmiBackend, "create_image", _create_image_tagging_snapshots)

    # New API actions: moto dispatches to any response method named after the action.
    AutoScalingResponse.disable_metrics_collection = disable_metrics_collection  # type: ignore[attr-defined]
    AutoScalingResponse.put_notification_configuration = put_notification_configuration  # type: ignore[attr-defined]
    AutoScalingResponse.delete_notification_configuration = delete_notification_configuration  # type: ignore[attr-defined]
    AutoScalingResponse.describe_notification_configurations = describe_notification_configurations  # type: ignore[attr-defined]
    LaunchTemplates.delete_launch_template_versions = delete_launch_template_versions  # type: ignore[attr-defined]
    patch_method(LaunchTemplate, "get_version", _get_version_skipping_deleted)
    patch_method(LaunchTemplate, "latest_version", _latest_live_version)
    patch_method(
        LaunchTemplateBackend,
        "describe_launch_template_versions",
        _describe_versions_skipping_deleted,
    )
    patch_method(LaunchTemplateBackend, "modify_launch_template", _modify_refusing_deleted_default)

    patch_method(
        LaunchTemplateBackend, "create_launch_template", _create_launch_template_without_own_tags
    )
    patch_method(FakeLoadBalancer, "__init__", _load_balancer_with_default_attributes)
    if not getattr(FakeAutoScalingGroup.tags.fset, "_selfheal_sorted", False):
        FakeAutoScalingGroup.tags = _sorted_tags_property(FakeAutoScalingGroup.tags)  # type: ignore[method-assign]
        FakeAutoScalingGroup.tags.fset._selfheal_sorted = True  # type: ignore[attr-defined]
