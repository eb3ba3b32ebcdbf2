# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write a game day's report: report.json, report.md and timeline.png."""

from __future__ import annotations

import json
import os
import re
import traceback
from datetime import datetime, timezone

try:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a display
    import matplotlib.pyplot as plt

    HAS_MATPLOTLIB = True
    MATPLOTLIB_IMPORT_ERROR = None
except ImportError:
    HAS_MATPLOTLIB = False
    MATPLOTLIB_IMPORT_ERROR = traceback.format_exc()


def report_dir(base, stack, scenario, when):
    """<base>/<stack>-<scenario>-<UTC timestamp>/ (names made safe for a path)."""
    safe = [re.sub(r"[^A-Za-z0-9_.-]+", "_", str(part)) for part in (stack, scenario)]
    timestamp = datetime.fromtimestamp(when, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return os.path.join(base, f"{safe[0]}-{safe[1]}-{timestamp}")


def _seconds(metric, scale):
    if metric["status"] == "measured":
        text = f"{metric['seconds']:.1f} s"
        if scale != 1:
            text += f" wall = **{metric['aws_seconds']:.1f} AWS s**"
        return text
    if metric["status"] == "timeout":
        waited = metric.get("waited")
        return "**TIMEOUT** (not within " + (f"{waited:.0f} s" if waited is not None else "the run") + ")"
    return "n/a"


def markdown(result):
    """A summary a person reads in ten seconds."""
    metrics, requests, scale = result["metrics"], result["requests"], result.get("time_scale", 1)
    verdicts = result.get("slos", [])
    passed = all(v["passed"] for v in verdicts)
    fault = result.get("fault") or {}
    lines = [
        f"# Game day: {result['stack']} / {result['scenario']} — {'PASS' if passed else 'FAIL'}",
        "",
        f"- **Fault**: {fault.get('action', 'none (load only)')} on "
        + (", ".join(f"{d.get('instance_id') or d.get('availability_zone')}" for d in fault.get("done", [])) or "-")
        + f" at {result.get('fault_at', {}).get('utc', '-')}",
        f"- **Time to detect**: {_seconds(metrics['detect'], scale)}",
        f"- **Replacement launched**: {_seconds(metrics['replacement'], scale)}",
        f"- **Time to recover**: {_seconds(metrics['recover'], scale)}",
        "- **Scale-out**: "
        + (_seconds(metrics["scale_out"], scale) if metrics["scale_out"]["status"] == "measured" else "none"),
        f"- **Requests**: {requests['sent']} sent, {requests['failed']} failed"
        + (f" ({100 * requests['failure_rate']:.2f} %)" if requests["failure_rate"] is not None else "")
        + (
            f"; floor r x TTD / N = {result['failure_floor']:.1f}, failed after the fault / floor = "
            f"{requests.get('failed_over_floor', 0):.2f}"
            if result.get("failure_floor")
            else ""
        ),
        "- **Latency**: "
        + ", ".join(
            f"{p} {requests['latency_' + p] * 1000:.1f} ms" if requests["latency_" + p] is not None else f"{p} -"
            for p in ("p50", "p95", "p99")
        ),
    ]
    if scale != 1:
        lines.append(f"- Time scale: the sandbox ran {scale:g}x faster than AWS; AWS s = wall s x {scale:g}.")
    if verdicts:
        lines += ["", "| SLO | limit | actual | result |", "|---|---|---|---|"]
        for v in verdicts:
            actual = "timeout" if v["actual"] is None else f"{v['actual']:g}"
            lines.append(f"| {v['slo']} | {v['limit']:g} | {actual} | {'pass' if v['passed'] else '**FAIL**'} |")
    lines += ["", "Details: report.json; timeline: timeline.png", ""]
    return "\n".join(lines)


def plot(result, path):
    """timeline.png: capacity, request rate and errors, latency; fault and recovery marked."""
    samples = result["timeline"]["samples"]
    buckets = result["timeline"]["per_second"]
    origin = result["timeline"]["start"]
    figure, (capacity, traffic, latency) = plt.subplots(3, 1, sharex=True, figsize=(10, 8), constrained_layout=True)
    ts = [s["t"] - origin for s in samples]
    # widest first, so that equal lines stay visible on top of each other
    capacity.step(
        ts,
        [s["healthy"] for s in samples],
        where="post",
        label="healthy targets",
        color="tab:green",
        linewidth=5,
        alpha=0.5,
    )
    capacity.step(
        ts, [s["in_service"] for s in samples], where="post", label="in service", color="tab:blue", linewidth=2
    )
    capacity.step(
        ts, [s["desired"] for s in samples], where="post", label="desired", color="black", linestyle="--", linewidth=1.2
    )
    capacity.set_ylabel("instances")
    capacity.set_ylim(bottom=0, top=max([s["desired"] for s in samples] + [s["in_service"] for s in samples] + [1]) + 1)
    scale = result.get("time_scale", 1)
    if scale != 1:
        top = capacity.secondary_xaxis("top", functions=(lambda x: x * scale, lambda x: x / scale))
        top.set_xlabel(f"AWS seconds (wall x {scale:g})")
    bt = [b["t"] - origin for b in buckets]
    traffic.bar(
        bt, [b["sent"] - b["failed"] for b in buckets], width=1.0, align="edge", color="tab:blue", label="succeeded / s"
    )
    traffic.bar(
        bt,
        [b["failed"] for b in buckets],
        width=1.0,
        align="edge",
        bottom=[b["sent"] - b["failed"] for b in buckets],
        color="tab:red",
        label="failed / s",
    )
    traffic.set_ylabel("requests / s")

    latency.plot(
        bt, [(b["latency_p50"] or 0) * 1000 for b in buckets], label="p50", color="tab:blue", drawstyle="steps-post"
    )
    latency.plot(
        bt, [(b["latency_p99"] or 0) * 1000 for b in buckets], label="p99", color="tab:orange", drawstyle="steps-post"
    )
    latency.set_ylabel("latency (ms)")
    latency.set_xlabel("seconds since the load started (wall clock)")
    for axis in (capacity, traffic, latency):
        axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    marks = [("fault", result.get("fault_at", {}).get("epoch"), "tab:red")]
    for name, key in (("detected", "detect"), ("recovered", "recover")):
        metric = result["metrics"][key]
        marks.append(
            (
                name,
                metric.get("at") if metric["status"] == "measured" else None,
                "tab:purple" if key == "detect" else "tab:green",
            )
        )
    for axis in (capacity, traffic, latency):
        for _name, at, color in marks:
            if at is not None:
                axis.axvline(at - origin, color=color, linestyle=":", linewidth=1.5)
    for name, at, color in marks:
        if at is not None:
            capacity.annotate(
                name,
                (at - origin, capacity.get_ylim()[1]),
                color=color,
                ha="left",
                va="top",
                rotation=90,
                xytext=(3, -3),
                textcoords="offset points",
            )
    if result["metrics"]["recover"]["status"] == "timeout":
        capacity.set_title("NOT RECOVERED within the run", color="tab:red")
    figure.suptitle(f"{result['stack']} / {result['scenario']}")
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_report(base, result):
    """Writes the three files; returns {"dir", "json", "markdown", "png" (None without matplotlib)}."""
    directory = report_dir(base, result["stack"], result["scenario"], result["timeline"]["start"])
    os.makedirs(directory, exist_ok=True)
    paths = {
        "dir": directory,
        "json": os.path.join(directory, "report.json"),
        "markdown": os.path.join(directory, "report.md"),
        "png": None,
    }
    with open(paths["json"], "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2, sort_keys=True)
    with open(paths["markdown"], "w", encoding="utf-8") as handle:
        handle.write(markdown(result))
    if HAS_MATPLOTLIB:
        paths["png"] = os.path.join(directory, "timeline.png")
        plot(result, paths["png"])
    return paths
