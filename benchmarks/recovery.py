"""Run every chaos scenario several times against a private, time-scaled sandbox.

Deploys the default stack once (playbooks/site.yml, with a minimum of 3 instances so that
the idle stack does not scale in to 2 between game days: every game day starts with N = 3),
then runs playbooks/chaos.yml --runs times for each
scenario and prints, per scenario, the median and worst time to detect, time to
recover, scale-out time and success rate, in AWS seconds (wall seconds x time scale), read
from each game day's report.json. Worst is the highest time and the lowest success rate; a
measurement that timed out counts as worst and is shown as "timeout". Every game day's
report folder is kept under reports/recovery-<UTC time>/.

Run: .venv/bin/python benchmarks/recovery.py [--runs 5] [--time-scale 10] [--scenario ...]
     (make dev-collections first; about 1 minute per game day at time scale 10)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from sandbox_session import REPO, Sandbox, run_playbook, running_sandbox

SCENARIOS = ("terminate", "stop", "crash_app", "fail_health", "cpu_stress", "az_outage", "scale_out_load")
TIMES = ("detect", "recover", "scale_out")


def game_day(sandbox: Sandbox, scenario: str, reports: Path) -> dict:
    """One chaos.yml run; its report.json (written also when an SLO is missed)."""
    before = set(reports.glob(f"*-{scenario}-*"))
    extra = ["-e", f"chaos_scenario={scenario}", "-e", f"selfheal_reports_dir={reports}"]
    proc = run_playbook(sandbox, "chaos.yml", extra)
    new = sorted(set(reports.glob(f"*-{scenario}-*")) - before)
    if not new:
        sys.exit(f"chaos.yml {scenario} wrote no report ({proc.returncode}):\n{proc.stdout[-3000:]}")
    report = json.loads((new[-1] / "report.json").read_text())
    report["playbook_rc"] = proc.returncode
    return report


def aws_seconds(report: dict, metric: str) -> float | None:
    """The metric in AWS seconds; None when it timed out; absent metrics are skipped by the caller."""
    measured = report["metrics"].get(metric) or {}
    return measured.get("aws_seconds") if measured.get("status") == "measured" else None


def summary(values: list[float | None], worst_is_high: bool = True) -> str:
    """'median / worst'; a timeout is worse than any number."""
    if not values:
        return "-"
    numbers = [v for v in values if v is not None]
    median = f"{statistics.median(numbers):.1f}" if len(numbers) * 2 > len(values) else "timeout"
    worst = "timeout" if len(numbers) < len(values) else f"{(max if worst_is_high else min)(numbers):.1f}"
    return f"{median} / {worst}"


def rate_summary(values: list[float]) -> str:
    return f"{statistics.median(values):.4f} / {min(values):.4f}"


def row(scenario: str, reports: list[dict]) -> list[str]:
    columns = [scenario, str(len(reports)), f"{sum(r['passed'] for r in reports)}/{len(reports)}"]
    for metric in TIMES:
        present = [r for r in reports if metric in r["metrics"]]
        columns.append(summary([aws_seconds(r, metric) for r in present]))
    columns.append(rate_summary([r["requests"]["success_rate"] for r in reports]))
    columns.append(str(max(r["requests"]["failed"] for r in reports)))
    return columns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--time-scale", type=float, default=10)
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="repeatable; default: all")
    args = parser.parse_args()
    results: dict[str, list[dict]] = {}
    reports = REPO / "reports" / time.strftime("recovery-%Y%m%dT%H%M%SZ", time.gmtime())
    reports.mkdir(parents=True)
    with (
        tempfile.TemporaryDirectory(prefix="selfheal-recovery-") as state,
        running_sandbox(Path(state), args.time_scale) as sandbox,
    ):
        site = run_playbook(sandbox, "site.yml", ["-e", "autoscaling_min_size=3"])
        if site.returncode != 0:
            sys.exit(f"site.yml failed:\n{site.stdout[-3000:]}")
        for scenario in args.scenario or SCENARIOS:
            for run in range(1, args.runs + 1):
                report = game_day(sandbox, scenario, reports)
                results.setdefault(scenario, []).append(report)
                print(f"{scenario} run {run}: passed={report['passed']}", file=sys.stderr, flush=True)
        run_playbook(sandbox, "teardown.yml")
    header = ["scenario", "runs", "SLOs met", "TTD", "TTR", "scale-out", "success rate", "max failed"]
    table = [header, ["---"] * len(header)] + [row(s, r) for s, r in results.items()]
    print(f"reports: {reports}")
    print(f"time scale {args.time_scale:g}; times in AWS seconds, median / worst; success rate median / lowest")
    for line in table:
        print("| " + " | ".join(line) + " |")


if __name__ == "__main__":
    main()
