# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Recovery arithmetic of a game day: no AWS, no I/O, only numbers.

A game day is a list of *samples* of the stack (one every few seconds) and a list of
*requests* sent through the load balancer. From the time the fault was injected this
module computes time to detect, time to replacement launched, time to recover, the
request figures and latency percentiles, and evaluates SLOs on them.

A sample is a dict::

    {"t": <epoch seconds>, "desired": 3, "in_service": 3, "healthy": 3, "unhealthy": 0,
     "instances": ["i-1", ...], "probe_ok": True, "alarms": {"name": "OK"}}

A request is a dict ``{"t": <epoch sent>, "latency": <seconds>, "ok": bool, "status": int}``.

A metric is a dict, never a bare number, so that a fault that never recovered cannot be
mistaken for a fast one: ``{"status": "measured", "seconds": 8.0, "aws_seconds": 40.0}``,
``{"status": "timeout", "seconds": None, "waited": 120.0}`` or
``{"status": "not_applicable", "seconds": None}``.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone

MEASURED = "measured"
TIMEOUT = "timeout"
NOT_APPLICABLE = "not_applicable"


def _metric(start, end, time_scale=1.0, waited=None):
    """Seconds from start to end, or a timeout when end never came."""
    if end is None:
        return {"status": TIMEOUT, "seconds": None, "aws_seconds": None, "waited": waited}
    seconds = round(end - start, 3)
    return {
        "status": MEASURED,
        "seconds": seconds,
        "aws_seconds": round(seconds * time_scale, 3),
        "at": end,
    }


def not_applicable(reason):
    return {"status": NOT_APPLICABLE, "seconds": None, "aws_seconds": None, "reason": reason}


def percentile(values, pct):
    """Linear interpolation between closest ranks (numpy's default); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * pct / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def is_degraded(sample, baseline_capacity):
    """The stack has visibly lost capacity: what 'detected' means for a game day."""
    return sample["unhealthy"] > 0 or sample["healthy"] < baseline_capacity or sample["in_service"] < sample["desired"]


def is_recovered(sample):
    """Healthy capacity is back to desired and the probes succeed.

    Desired as it is then: a scaling policy may change it during the game day (an idle
    stack's scale-in alarm, a scale-out under load), and the group heals toward it.
    """
    return (
        sample["healthy"] >= sample["desired"]
        and sample["in_service"] >= sample["desired"]
        and sample["unhealthy"] == 0
        and sample.get("probe_ok", True)
    )


class RecoveryWatch:
    """Detection, replacement, scale-out and recovery, followed one sample at a time.

    Samples come in time order. baseline is the last sample before the fault (the
    first one after it when there is none, or given): its desired capacity is the
    capacity to get back to, its instances are the ones a replacement is not. The game
    day asks after every sample whether the stack has recovered; this answers without
    going over the samples again.
    """

    def __init__(self, fault_time, baseline=None):
        self.fault_time = fault_time
        self.baseline = baseline
        self._fixed_baseline = baseline is not None
        self.detected = None
        self.replaced = None
        self.scaled = None
        self.recovered = None

    def add(self, sample):
        t = sample["t"]
        if t <= self.fault_time and not self._fixed_baseline:
            self.baseline = sample
        if t < self.fault_time:
            return
        if self.baseline is None:
            self.baseline = sample
        capacity = self.baseline["desired"]
        if self.detected is None and is_degraded(sample, capacity):
            self.detected = t
        if self.replaced is None and set(sample.get("instances", [])) - set(self.baseline.get("instances", [])):
            self.replaced = t
        if self.scaled is None and sample["desired"] > capacity:
            self.scaled = t
        if self.recovered is None and self.detected is not None and is_recovered(sample):
            self.recovered = t


def recovery_metrics(samples, fault_time, baseline=None, time_scale=1.0, end_time=None):
    """Time to detect, to replacement launched and to recover, measured from fault_time.

    baseline as in RecoveryWatch. end_time is when measuring stopped: what a timeout
    waited for (the last sample after the fault when omitted).
    """
    ordered = sorted(samples, key=lambda s: s["t"])
    watch = RecoveryWatch(fault_time, baseline)
    for sample in ordered:
        watch.add(sample)
    if end_time is None:
        end_time = ordered[-1]["t"] if ordered and ordered[-1]["t"] >= fault_time else fault_time
    waited = round(end_time - fault_time, 3)
    return {
        "detect": _metric(fault_time, watch.detected, time_scale, waited),
        "replacement": _metric(fault_time, watch.replaced, time_scale, waited),
        "recover": _metric(fault_time, watch.recovered, time_scale, waited),
        "scale_out": _metric(fault_time, watch.scaled, time_scale, waited),
    }


def alarm_transitions(samples):
    """[{t, alarm, from, to}] for every change of an alarm's state between samples."""
    transitions = []
    last = {}
    for sample in sorted(samples, key=lambda s: s["t"]):
        for name, state in sorted(sample.get("alarms", {}).items()):
            if name in last and last[name] != state:
                transitions.append({"t": sample["t"], "alarm": name, "from": last[name], "to": state})
            last[name] = state
    return transitions


def request_summary(requests, fault_time=None):
    """Requests sent / failed, failure rate and latency percentiles (seconds) of the answered ones."""
    sent = len(requests)
    failed = sum(1 for r in requests if not r["ok"])
    latencies = [r["latency"] for r in requests if r.get("latency") is not None]
    statuses = {}
    for r in requests:
        key = str(r.get("status") or "error")
        statuses[key] = statuses.get(key, 0) + 1
    summary = {
        "sent": sent,
        "failed": failed,
        "succeeded": sent - failed,
        "failure_rate": round(failed / sent, 6) if sent else None,
        "success_rate": round((sent - failed) / sent, 6) if sent else None,
        "latency_p50": _round(percentile(latencies, 50)),
        "latency_p95": _round(percentile(latencies, 95)),
        "latency_p99": _round(percentile(latencies, 99)),
        "by_status": statuses,
    }
    if fault_time is not None:
        summary["failed_after_fault"] = sum(1 for r in requests if not r["ok"] and r["t"] >= fault_time)
    return summary


def _round(value):
    return None if value is None else round(value, 6)


def failure_floor(rate, detect_seconds, instances):
    """Requests any ALB loses when one of N instances dies: r x detection time / N.

    Until the load balancer marks the target unhealthy, it keeps routing 1/N of the
    traffic to it. None when detection never happened.
    """
    if detect_seconds is None or not instances:
        return None
    return rate * detect_seconds / instances


def per_second(requests, start, end):
    """[{t, sent, failed, latency_p50}] per whole second from start to end (for the plot)."""
    buckets = []
    seconds = max(math.ceil(end - start), 0)
    grouped = [[] for _index in range(seconds)]
    for r in requests:
        index = int(r["t"] - start)
        if 0 <= index < seconds:
            grouped[index].append(r)
    for index, group in enumerate(grouped):
        latencies = [r["latency"] for r in group if r.get("latency") is not None]
        buckets.append(
            {
                "t": start + index,
                "sent": len(group),
                "failed": sum(1 for r in group if not r["ok"]),
                "latency_p50": _round(percentile(latencies, 50)),
                "latency_p99": _round(percentile(latencies, 99)),
            }
        )
    return buckets


# SLO name -> (where the actual value is, comparison); seconds are AWS seconds.
SLOS = {
    "max_ttd": ("detect", "max"),
    "max_ttr": ("recover", "max"),
    "max_replacement": ("replacement", "max"),
    "max_scale_out": ("scale_out", "max"),
    "min_success_rate": ("success_rate", "min"),
    "max_failed_requests": ("failed", "max"),
    "max_failed_over_floor": ("failed_over_floor", "max"),
}


def evaluate_slos(result, slos):
    """[{slo, limit, actual, passed, why}] for every SLO given (None values are skipped).

    A metric that timed out fails its SLO: it never met the limit.
    """
    unknown = sorted(set(slos) - set(SLOS))
    if unknown:
        raise ValueError(f"slos: unknown {', '.join(unknown)}; allowed: {', '.join(sorted(SLOS))}")
    verdicts = []
    for name in sorted(slos):
        limit = slos[name]
        if limit is None:
            continue
        where, kind = SLOS[name]
        if where in result.get("metrics", {}):
            metric = result["metrics"][where]
            actual = metric.get("aws_seconds")
            why = metric["status"]
        else:
            actual = result.get("requests", {}).get(where)
            why = "measured" if actual is not None else "not measured"
        if actual is None:
            passed = False
        elif kind == "max":
            passed = actual <= limit
        else:
            passed = actual >= limit
        verdicts.append({"slo": name, "limit": limit, "actual": actual, "passed": passed, "why": why})
    return verdicts


def build_result(
    stack, scenario, samples, requests, start, end, fault_time=None, fault=None, rate=None, time_scale=1.0, slos=None
):
    """Everything a game day reports, from its raw samples and requests.

    fault_time None means the load itself is the event (a scale-out test): metrics are
    measured from the start of the load.
    """
    origin = start if fault_time is None else fault_time
    metrics = recovery_metrics(samples, origin, time_scale=time_scale, end_time=end)
    requests_summary = request_summary(requests, fault_time)
    before = [s for s in sorted(samples, key=lambda s: s["t"]) if s["t"] <= origin]
    baseline = before[-1] if before else (samples[0] if samples else None)
    instances = baseline["healthy"] if baseline else 0
    floor = None
    if rate and metrics["detect"]["status"] == MEASURED:
        floor = failure_floor(rate, metrics["detect"]["seconds"], instances)
    if floor:
        requests_summary["failed_over_floor"] = round(
            requests_summary.get("failed_after_fault", requests_summary["failed"]) / floor, 3
        )
    result = {
        "stack": stack,
        "scenario": scenario,
        "time_scale": time_scale,
        "rate": rate,
        "fault": fault,
        "fault_at": stamp(origin),
        "started_at": stamp(start),
        "ended_at": stamp(end),
        "metrics": metrics,
        "requests": requests_summary,
        "failure_floor": None if floor is None else round(floor, 3),
        "alarm_transitions": alarm_transitions(samples),
        "timeline": {
            "start": start,
            "samples": [{k: v for k, v in s.items() if k in _SAMPLE_KEYS} for s in samples],
            "per_second": per_second(requests, start, end),
        },
    }
    result["slos"] = evaluate_slos(result, slos or {})
    result["passed"] = all(v["passed"] for v in result["slos"])
    return result


_SAMPLE_KEYS = ("t", "desired", "in_service", "healthy", "unhealthy", "instances", "probe_ok", "alarms")


def stamp(epoch=None):
    """{"utc": ISO 8601, "epoch": seconds}: how every timestamp is returned."""
    epoch = time.time() if epoch is None else epoch
    return {
        "utc": datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds"),
        "epoch": round(epoch, 3),
    }
