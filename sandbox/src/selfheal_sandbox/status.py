"""The status document (`status --json`, `GET /_sandbox/status`) and its text form.

One shape for both: the server builds it from live state, the CLI adds
`running` and falls back to `not_running()` when nothing answers. Keys are only
ever added (tools read `status --json`); times in it are AWS time (ISO 8601 UTC).
"""

from __future__ import annotations

import io
import shutil
import sys
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .state import RuntimeInfo, StateDir

if TYPE_CHECKING:  # the CLI imports this module; it must not pay for importing moto
    from .adapter import MotoAdapter
    from .instances import InstanceRoots

STATUS_ROUTE = "/_sandbox/status"
# The text view: terminated instances older than this (AWS s) are only counted.
TERMINATED_SHOWN_AWS_S = 600
RECENT_ROWS = 5
# Text into a pipe or file: rows stay whole (free text is capped, see _TEXT_WIDTHS).
PIPE_WIDTH = 200
# The JSON keeps this many scaling activities and notifications, newest first.
RECENT_KEPT = 20


class TerminationTimes:
    """When each instance was terminated (AWS time): moto keeps terminated instances
    without a time, and the status hides the old ones. A `MotoListener`."""

    def __init__(self, utcnow: Callable[[], datetime]) -> None:
        self._utcnow = utcnow
        self.at: dict[str, datetime] = {}

    def instance_terminated(self, instance_id: str) -> None:
        self.at[instance_id] = self._utcnow()

    def backends_reset(self) -> None:
        self.at.clear()


def _paths(state: StateDir) -> dict[str, str]:
    return {
        "state_dir": str(state.root),
        "mailbox": str(state.mailbox_dir),
        "log": str(state.log_file),
        "env_file": str(state.env_file),
    }


def collect(
    info: RuntimeInfo,
    state: StateDir,
    adapter: MotoAdapter,
    roots: InstanceRoots,
    *,
    listener_address: Callable[[str, int], str | None] | None = None,
    terminated_at: dict[str, datetime] | None = None,
) -> dict[str, Any]:
    """Live status, built inside the server (call it under the sandbox lock).

    listener_address(lb arn, listener port) -> "127.0.0.1:PORT" where the ALB data
    plane serves that listener (None until it listens). terminated_at: instance id
    -> when it was terminated (AWS time).
    """
    terminated_at = terminated_at or {}

    def address(arn: str, port: int) -> str | None:
        return listener_address(arn, port) if listener_address else None

    return {
        "running": True,
        "pid": info.pid,
        "endpoint": info.endpoint,
        "port": info.port,
        "region": info.region,
        "account_id": adapter.account_id,
        "time_scale": info.time_scale,
        "started_at": info.started_at,
        **_paths(state),
        "load_balancers": [
            {
                "name": lb.name,
                "arn": lb.arn,
                "dns_name": lb.dns_name,
                "type": lb.type,
                "state": lb.state,
                "listeners": [
                    {
                        "protocol": li.protocol,
                        "port": li.port,
                        # Where the sandbox serves this listener: 127.0.0.1:PORT, and as a URL.
                        "address": (local := address(lb.arn, li.port)),
                        "url": f"http://{local}" if local else None,
                    }
                    for li in lb.listeners
                ],
            }
            for lb in adapter.load_balancers()
        ],
        "instances": [
            {
                "id": inst.id,
                "state": inst.state,
                "image_id": inst.image_id,
                "root": str(root) if (root := roots.root_of(inst.id)) else None,
                "availability_zone": (d := adapter.instance_details(inst.id))
                and d.availability_zone,
                "terminated_at": _iso(terminated_at.get(inst.id)),
            }
            for inst in adapter.instances()
        ],
    }


def not_running(state: StateDir, last: RuntimeInfo | None, problem: str | None) -> dict[str, Any]:
    return {
        "running": False,
        "pid": None,
        "endpoint": None,
        "port": None,
        "region": last.region if last else None,
        "account_id": None,
        "time_scale": last.time_scale if last else None,
        "started_at": None,
        **_paths(state),
        "load_balancers": [],
        "instances": [],
        **{key: [] for key in VIEW_KEYS},
        "aws_time": None,
        "problem": problem,
    }


# ----------------------------------------------------------------- views


VIEW_KEYS = (
    "target_groups",
    "auto_scaling_groups",
    "scaling_activities",
    "alarms",
    "notifications",
)


def _iso(when: datetime | None) -> str | None:
    return when.isoformat(timespec="milliseconds") if when else None


def add_views(
    doc: dict[str, Any],
    *,
    now: datetime,
    target_groups: list[dict[str, Any]],
    activities: Iterable[Any],
    alarm_history: list[dict[str, Any]],
    mails: Iterable[Any],
) -> None:
    """Add to the document (built by collect(), with each behaviour's status under
    "behaviours") what a person checks first: instance addresses and lifecycle, target
    health, groups, recent scaling activities, alarms and delivered notifications.

    activities: scaling activities, newest first; alarm_history: alarm history items;
    mails: delivered mail (mailbox.Mail), oldest first.
    """
    behaviours = doc.get("behaviours", {})
    runtimes = behaviours.get("ec2", {}).get("instances", {})
    groups = behaviours.get("autoscaling", {}).get("groups", {})
    members = {i["id"]: (name, i) for name, g in groups.items() for i in g["instances"]}
    for inst in doc["instances"]:
        runtime = runtimes.get(inst["id"], {})
        group, member = members.get(inst["id"], (None, {}))
        inst["address"] = runtime.get("address")
        inst["availability_zone"] = inst.get("availability_zone") or runtime.get(
            "availability_zone"
        )
        inst["auto_scaling_group"] = group
        inst["lifecycle"] = member.get("lifecycle")
        inst["health"] = member.get("health")
    doc["aws_time"] = _iso(now)
    doc["target_groups"] = target_groups
    doc["auto_scaling_groups"] = [
        {
            "name": name,
            "desired": g["desired"],
            "in_service": sum(1 for i in g["instances"] if i["lifecycle"] == "InService"),
            "min": g["min"],
            "max": g["max"],
            "instances": len(g["instances"]),
            "health_check_type": g.get("health_check_type"),
        }
        for name, g in groups.items()
    ]
    doc["scaling_activities"] = [
        {
            "group": a.auto_scaling_group_name,
            "start_time": _iso(a.start_time),
            "end_time": _iso(a.end_time),
            "status": a.status_code,
            "description": a.description,
            "cause": a.cause,
        }
        for a in list(activities)[:RECENT_KEPT]
    ]
    changed: dict[str, datetime] = {}
    for item in alarm_history:
        if item["HistoryItemType"] == "StateUpdate":
            when = item["Timestamp"]
            changed[item["AlarmName"]] = max(when, changed.get(item["AlarmName"], when))
    doc["alarms"] = [
        {**a, "state_changed_at": _iso(changed.get(a["name"]))}
        for a in behaviours.get("cloudwatch", {}).get("alarms", [])
    ]
    delivered = [
        {"timestamp": m.timestamp, "protocol": "email", "endpoint": m.address, "subject": m.subject,
         "topic_arn": m.topic_arn}
        for m in mails
        if m.type == "Notification"
    ] + behaviours.get("sns", {}).get("recent_http_notifications", [])  # fmt: skip
    # ISO 8601 UTC with milliseconds sorts as time does.
    delivered.sort(key=lambda n: n["timestamp"], reverse=True)
    doc["notifications"] = delivered[:RECENT_KEPT]


def _scale(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:g}x" if value != 1 else "1x (real time)"


def _clock(iso: str | None) -> str:
    """HH:MM:SS of an ISO timestamp (the day is rarely in doubt in a sandbox)."""
    return iso[11:19] if iso else "-"


def _age_s(iso: str | None, now: str | None) -> float | None:
    if not iso or not now:
        return None
    return (datetime.fromisoformat(now) - datetime.fromisoformat(iso)).total_seconds()


# Free text columns give way to the identifiers when the terminal is narrow, and
# are cut (with "…") at these widths rather than wrapped.
_TEXT_WIDTHS = {"description": 48, "cause": 60, "reason": 60, "subject": 60, "url": 40}


def _table(title: str, *columns: str) -> Any:
    from rich import box  # noqa: PLC0415 - only the text view needs rich
    from rich.table import Table  # noqa: PLC0415

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.title_text = title  # printed by render_text above the table: never wrapped
    for name in columns:
        text = name in _TEXT_WIDTHS
        # rich narrows wrappable columns first; the cells themselves never wrap (_add).
        table.add_column(name, no_wrap=not text, max_width=_TEXT_WIDTHS.get(name))
    return table


def _add(table: Any, *cells: str) -> None:
    from rich.text import Text  # noqa: PLC0415

    table.add_row(*(Text(cell, no_wrap=True, overflow="ellipsis") for cell in cells))


def _shown_instances(status: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """Instances to list: all but those terminated before the last 10 AWS minutes."""
    shown, hidden = [], 0
    for inst in status["instances"]:
        if inst["state"] == "terminated":
            age = _age_s(inst.get("terminated_at"), status.get("aws_time"))
            if age is None or age > TERMINATED_SHOWN_AWS_S:
                hidden += 1
                continue
        shown.append(inst)
    return shown, hidden


def _header(status: dict[str, Any]) -> list[str]:
    lines = []
    if status["running"]:
        lines.append(f"sandbox running (pid {status['pid']}) since {status['started_at']}")
        lines.append(f"  endpoint    {status['endpoint']}   region {status['region']}")
    else:
        lines.append(
            "sandbox not running" + (f": {status['problem']}" if status.get("problem") else "")
        )
    lines.append(f"  time scale  {_scale(status['time_scale'])}")
    if status.get("aws_time"):
        lines.append(f"  AWS time    {status['aws_time']}")
    lines.append(f"  state dir   {status['state_dir']}")
    lines.append(f"  mailbox     {status['mailbox']}")
    lines.append(f"  log         {status['log']}")
    if status["running"]:
        lines.append(f"  env         source {status['env_file']}")
    return lines


def _sections(status: dict[str, Any]) -> Iterable[Any]:
    """The tables of a running sandbox, in the order one reads a failure."""
    lbs = _table(
        f"load balancers: {len(status['load_balancers'])}", "name", "state", "listener", "url"
    )
    for lb in status["load_balancers"]:
        for li in lb["listeners"] or [{"protocol": "", "port": "", "url": None}]:
            listener = f"{li['protocol']}:{li['port']}" if li["protocol"] else "-"
            _add(lbs, lb["name"], lb["state"], listener, li["url"] or "no local address yet")
    yield lbs

    shown, hidden = _shown_instances(status)
    more = f" ({hidden} terminated more than {TERMINATED_SHOWN_AWS_S // 60} AWS min ago hidden)"
    insts = _table(
        f"instances: {len(status['instances'])}" + (more if hidden else ""),
        "id", "az", "state", "address", "group", "lifecycle", "health", "image",
    )  # fmt: skip
    for i in shown:
        _add(
            insts,
            i["id"], i.get("availability_zone") or "-", i["state"], i.get("address") or "-",
            i.get("auto_scaling_group") or "-", i.get("lifecycle") or "-", i.get("health") or "-",
            i["image_id"],
        )  # fmt: skip
    yield insts

    tgs = _table("target health", "target group", "target", "state", "reason", "description")
    for tg in status.get("target_groups", []):
        if not tg["targets"]:
            _add(tgs, tg["name"], "(no targets)", "", "", "")
        for t in tg["targets"]:
            target = f"{t['id']}:{t['port']}" if t.get("port") else t["id"]
            _add(tgs, tg["name"], target, t["state"], t["reason"] or "-", t["description"] or "-")
    yield tgs

    asgs = _table(
        "Auto Scaling groups", "group", "desired", "in service", "min", "max", "health check"
    )
    for g in status.get("auto_scaling_groups", []):
        _add(
            asgs,
            g["name"], str(g["desired"]), str(g["in_service"]), str(g["min"]), str(g["max"]),
            g.get("health_check_type") or "-",
        )  # fmt: skip
    yield asgs

    acts = _table(
        f"last {RECENT_ROWS} scaling activities", "time", "group", "status", "description", "cause"
    )
    for a in status.get("scaling_activities", [])[:RECENT_ROWS]:
        cause = a["cause"].split(" ", 2)[2] if a["cause"].startswith("At ") else a["cause"]
        _add(acts, _clock(a["start_time"]), a["group"], a["status"], a["description"], cause)
    yield acts

    alarms = _table("alarms", "alarm", "state", "since", "metric", "reason")
    for a in status.get("alarms", []):
        _add(
            alarms,
            a["name"], a["state"], _clock(a.get("state_changed_at")),
            (a.get("metric") or "-").rsplit("/", 1)[-1], a.get("reason") or "-",
        )  # fmt: skip
    yield alarms

    notes = _table(f"last {RECENT_ROWS} notifications delivered", "time", "by", "to", "subject")
    for n in status.get("notifications", [])[:RECENT_ROWS]:
        _add(notes, _clock(n["timestamp"]), n["protocol"], n["endpoint"], n["subject"] or "-")
    yield notes


def render_text(status: dict[str, Any], color: bool | None = None, width: int | None = None) -> str:
    """The readable status: a header, then one table per resource kind. Colour only
    for a terminal (`color` None: whether stdout is one)."""
    lines = _header(status)
    if not status["running"]:
        return "\n".join(lines)
    from rich.console import Console  # noqa: PLC0415 - only the text view needs rich

    tty = sys.stdout.isatty() if color is None else color
    out = io.StringIO()
    console = Console(
        file=out,
        width=width or (shutil.get_terminal_size().columns if tty else PIPE_WIDTH),
        force_terminal=tty,
        no_color=not tty,
        highlight=False,
    )
    for table in _sections(status):
        console.print(table.title_text, style="bold", overflow="ellipsis", no_wrap=True)
        console.print(table if table.row_count else "  none")
    # rich pads every line to the table's width; trailing blanks only hinder grep/diff.
    return "\n".join([*lines, *(line.rstrip() for line in out.getvalue().splitlines())])
