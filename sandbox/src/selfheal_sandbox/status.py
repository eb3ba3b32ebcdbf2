"""The status document (`status --json`, `GET /_sandbox/status`) and its text form.

One shape for both: the server builds it from live state, the CLI adds
`running` and falls back to `not_running()` when nothing answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .state import RuntimeInfo, StateDir

if TYPE_CHECKING:  # the CLI imports this module; it must not pay for importing moto
    from .adapter import MotoAdapter
    from .instances import InstanceRoots

STATUS_ROUTE = "/_sandbox/status"


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
    listener_address: Callable[[str, int], str | None] | None = None,
) -> dict[str, Any]:
    """Live status, built inside the server (call it under the sandbox lock).

    listener_address(lb arn, listener port) -> "127.0.0.1:PORT" where the ALB data
    plane serves that listener (None until it listens).
    """

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
        "problem": problem,
    }


def _scale(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:g}x" if value != 1 else "1x (real time)"


def render_text(status: dict[str, Any]) -> str:
    lines = []
    if status["running"]:
        lines.append(f"sandbox running (pid {status['pid']}) since {status['started_at']}")
        lines.append(f"  endpoint    {status['endpoint']}   region {status['region']}")
    else:
        lines.append(
            "sandbox not running" + (f": {status['problem']}" if status.get("problem") else "")
        )
    lines.append(f"  time scale  {_scale(status['time_scale'])}")
    lines.append(f"  state dir   {status['state_dir']}")
    lines.append(f"  mailbox     {status['mailbox']}")
    lines.append(f"  log         {status['log']}")
    if status["running"]:
        lines.append(f"  env         source {status['env_file']}")
        lbs = status["load_balancers"]
        lines.append(f"load balancers: {len(lbs)}")
        for lb in lbs:
            lines.append(f"  {lb['name']}  {lb['dns_name']}  ({lb['state']})")
            for li in lb["listeners"]:
                address = li["address"] or "no local address yet"
                lines.append(f"    {li['protocol']}:{li['port']} -> {address}")
        insts = status["instances"]
        lines.append(f"instances: {len(insts)}")
        for inst in insts:
            lines.append(
                f"  {inst['id']}  {inst['state']:<11} {inst['image_id']}  {inst['root'] or '-'}"
            )
    return "\n".join(lines)
