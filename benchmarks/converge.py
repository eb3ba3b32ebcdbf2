"""Time a whole converge against a private sandbox: first site.yml, second site.yml, teardown.yml.

Prints, for each run, the wall time, the number of tasks that called AWS (amazon.aws and
community.aws modules that ran, loops counted per item) and what changed, then the
ratios rerun/first and teardown/first. One run, side by side, so the ratios hold on a
noisy machine even when the seconds do not.

Run: .venv/bin/python benchmarks/converge.py   (make dev-collections first; ~2 min)
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from sandbox_session import Sandbox, run_playbook, running_sandbox

AWS_COLLECTIONS = ("amazon.aws.", "community.aws.")


@dataclass(frozen=True)
class Run:
    name: str
    wall_s: float
    aws_calls: int
    changed: int
    ok: int


def host_results(result: dict) -> list[dict]:
    """One entry per module run: the item results of a loop, else the task result."""
    return result.get("results") or [result]


def run(sandbox: Sandbox, name: str, playbook: str) -> Run:
    started = time.monotonic()
    proc = run_playbook(sandbox, playbook, env={"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"})
    wall = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"{playbook} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout)
    aws_calls = 0
    for play in report["plays"]:
        for task in play["tasks"]:
            for result in task["hosts"].values():
                if not str(result.get("action", "")).startswith(AWS_COLLECTIONS):
                    continue
                aws_calls += sum(1 for r in host_results(result) if not r.get("skipped"))
    stats = report["stats"]["localhost"]
    return Run(name, wall, aws_calls, stats["changed"], stats["ok"])


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="selfheal-bench-") as state, running_sandbox(Path(state)) as sandbox:
        runs = [
            run(sandbox, "site.yml (first)", "site.yml"),
            run(sandbox, "site.yml (again)", "site.yml"),
            run(sandbox, "teardown.yml", "teardown.yml"),
        ]
    print(f"{'run':<20}{'wall s':>8}{'AWS tasks':>11}{'s/task':>8}{'changed':>9}{'ok':>5}")
    for r in runs:
        per_task = r.wall_s / max(r.aws_calls, 1)
        print(f"{r.name:<20}{r.wall_s:>8.1f}{r.aws_calls:>11}{per_task:>8.2f}{r.changed:>9}{r.ok:>5}")
    first, again, teardown = runs
    print(f"rerun/first    {again.wall_s / first.wall_s:.2f}")
    print(f"teardown/first {teardown.wall_s / first.wall_s:.2f}")


if __name__ == "__main__":
    main()
