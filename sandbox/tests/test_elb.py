"""The ALB behaviour: real HTTP through the sandbox's data plane to small local
backends, health checks with AWS's thresholds and reasons, draining, and errors.

One sandbox at time scale 10 serves this module: a 5 s health-check interval is
0.5 s of wall time. Targets are instances tagged `sandbox:address` (the elb
behaviour's seam), so the backends here stand in for their apps.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import RunningSandbox, launch, make_subnets, run_cli, start_sandbox
from ec2_helpers import APP_PORT, INSTALL_DIR, bake_web_image, user_data

SCALE = 10
INTERVAL_AWS_S = 5  # -> 0.5 s wall


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the proxy cutting a connection (504, 502 tests) is expected here


class Backend:
    """A target's app: `/` names the backend, /health answers `health_status`,
    `/slow?s=N` answers after N wall seconds. Records every request."""

    def __init__(self, host: str) -> None:
        self.health_status = 200
        self.health_log: list[tuple[float, int, str]] = []  # (time, status, user agent)
        self.hits = 0
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                if self.path == "/health":
                    status = backend.health_status
                    agent = self.headers.get("User-Agent", "")
                    backend.health_log.append((time.monotonic(), status, agent))
                    self._reply(status, b"health\n")
                    return
                backend.hits += 1
                if self.path.startswith("/slow"):
                    time.sleep(float(self.path.split("s=")[1]))
                self._reply(200, f"from {backend.name}\n".encode())

            def do_POST(self) -> None:
                backend.hits += 1
                body = self.rfile.read(int(self.headers["Content-Length"]))
                echo = {"body": body.decode(), "xff": self.headers.get("X-Forwarded-For")}
                self._reply(201, json.dumps(echo).encode())

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = _QuietServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.host, self.port = self.server.server_address[:2]
        self.name = f"{self.host}:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def checks_since(self, since: float, status: int | None = None) -> int:
        return sum(1 for t, s, _ in self.health_log if t >= since and status in (None, s))


@pytest.fixture(scope="module")
def alb_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    running = start_sandbox(tmp_path_factory.mktemp("elb"), "--time-scale", str(SCALE))
    yield running
    result = run_cli("down", "--state-dir", str(running.state_dir))
    assert result.returncode == 0, result.stderr


@pytest.fixture
def backends() -> Iterator[Callable[[int], list[Backend]]]:
    started: list[Backend] = []

    def make(count: int) -> list[Backend]:
        new = [Backend(f"127.0.0.{len(started) + n + 2}") for n in range(count)]
        started.extend(new)
        return new

    yield make
    for backend in started:
        backend.stop()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def get(url: str, timeout: float = 10) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@dataclass
class Alb:
    aws: RunningSandbox
    elbv2: Any
    ec2: Any
    lb_arn: str
    tg_arn: str
    url: str
    instances: dict[str, Backend] = field(default_factory=dict)

    def register(self, *backends: Backend) -> list[str]:
        ids = []
        for backend in backends:
            instance = launch(self.ec2)
            self.ec2.create_tags(
                Resources=[instance], Tags=[{"Key": "sandbox:address", "Value": backend.host}]
            )
            self.instances[instance] = backend
            ids.append(instance)
        self.elbv2.register_targets(
            TargetGroupArn=self.tg_arn,
            Targets=[{"Id": i, "Port": self.instances[i].port} for i in ids],
        )
        return ids

    def health(self) -> dict[str, dict[str, str]]:
        described = self.elbv2.describe_target_health(TargetGroupArn=self.tg_arn)
        return {d["Target"]["Id"]: d["TargetHealth"] for d in described["TargetHealthDescriptions"]}

    def states(self) -> dict[str, str]:
        return {i: h["State"] for i, h in self.health().items()}

    def wait_states(self, wanted: dict[str, str], timeout: float = 15) -> dict[str, dict]:
        return wait_for(
            f"target states {wanted}",
            lambda: (
                (h := self.health())
                and all(h.get(i, {}).get("State") == s for i, s in wanted.items())
                and h
            ),
            timeout,
        )


def sandbox_status(aws: RunningSandbox) -> dict[str, Any]:
    with urllib.request.urlopen(aws.endpoint + "/_sandbox/status", timeout=10) as resp:  # noqa: S310
        return json.loads(resp.read())


def make_alb(
    aws: RunningSandbox, *, idle_timeout: int | None = None, delay: int = 300, **tg: Any
) -> Alb:
    aws.reset()
    ec2, elbv2 = aws.client("ec2"), aws.client("elbv2")
    subnets = make_subnets(ec2)
    vpc = ec2.describe_subnets(SubnetIds=subnets[:1])["Subnets"][0]["VpcId"]
    lb = elbv2.create_load_balancer(Name="web-alb", Subnets=subnets)["LoadBalancers"][0]
    settings = {
        "HealthCheckPath": "/health",
        "HealthCheckIntervalSeconds": INTERVAL_AWS_S,
        "HealthCheckTimeoutSeconds": 2,
        "HealthyThresholdCount": 2,
        "UnhealthyThresholdCount": 2,
        **tg,
    }
    tg_arn = elbv2.create_target_group(
        Name="web-tg", Protocol="HTTP", Port=8080, VpcId=vpc, **settings
    )["TargetGroups"][0]["TargetGroupArn"]
    elbv2.modify_target_group_attributes(
        TargetGroupArn=tg_arn,
        Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": str(delay)}],
    )
    if idle_timeout is not None:
        elbv2.modify_load_balancer_attributes(
            LoadBalancerArn=lb["LoadBalancerArn"],
            Attributes=[{"Key": "idle_timeout.timeout_seconds", "Value": str(idle_timeout)}],
        )
    elbv2.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
    )

    def local_url() -> str | None:
        for listed in sandbox_status(aws)["load_balancers"]:
            if listed["arn"] == lb["LoadBalancerArn"] and listed["listeners"][0]["url"]:
                return listed["listeners"][0]["url"]
        return None

    url = wait_for("the listener's local address", local_url)
    return Alb(aws, elbv2, ec2, lb["LoadBalancerArn"], tg_arn, url)


def report(aws: RunningSandbox) -> dict[str, Any]:
    return json.loads((Path(aws.state_dir) / "dataplane" / "report.json").read_text())


# --------------------------------------------------------------------- tests


def test_new_load_balancer_turns_active_once_its_listener_is_served(
    alb_sandbox: RunningSandbox,
) -> None:
    """AWS: an ALB is `provisioning` until it can take traffic, then `active`; the
    sandbox makes it active once its data plane serves it, and status maps the
    ALB's DNS name to the local listener address."""
    alb = make_alb(alb_sandbox)
    state = wait_for(
        "active",
        lambda: (
            (
                s := alb.elbv2.describe_load_balancers(LoadBalancerArns=[alb.lb_arn])[
                    "LoadBalancers"
                ][0]["State"]["Code"]
            )
            == "active"
            and s
        ),
    )
    assert state == "active"
    [listed] = sandbox_status(alb_sandbox)["load_balancers"]
    dns = listed["dns_name"]
    mapped = sandbox_status(alb_sandbox)["behaviours"]["elb"]["load_balancers"][dns]
    assert mapped["listeners"]["80"] == alb.url == f"http://{listed['listeners'][0]['address']}"


def test_new_target_turns_healthy_after_one_passing_check_then_round_robin(
    alb_sandbox: RunningSandbox, backends: Callable[[int], list[Backend]]
) -> None:
    """AWS: "After your target is registered, it must pass one health check to be
    considered healthy" (not HealthyThresholdCount); until then it is `initial` with
    Elb.RegistrationInProgress. Requests go round robin to healthy targets, and
    health checks are GETs from ELB-HealthChecker/2.0."""
    alb = make_alb(alb_sandbox, HealthyThresholdCount=5)
    b1, b2, b3 = backends(3)
    ids = alb.register(b1, b2, b3)
    first = alb.health()
    assert {h["State"] for h in first.values()} == {"initial"}
    assert {h["Reason"] for h in first.values()} == {"Elb.RegistrationInProgress"}

    healthy = alb.wait_states(dict.fromkeys(ids, "healthy"))
    assert all("Reason" not in h for h in healthy.values())
    # Healthy long before 5 checks (the healthy threshold) could have run.
    assert all(1 <= len(b.health_log) < 5 for b in (b1, b2, b3))
    assert {agent for b in (b1, b2, b3) for _, _, agent in b.health_log} == {
        "ELB-HealthChecker/2.0"
    }

    bodies = [get(alb.url)[1] for _ in range(9)]
    assert sorted(bodies) == sorted([f"from {b.name}\n" for b in (b1, b2, b3)] * 3)
    assert bodies[:3] == bodies[3:6] == bodies[6:]  # a strict rotation


def test_failing_target_turns_unhealthy_after_threshold_and_recovers_after_healthy_threshold(
    alb_sandbox: RunningSandbox, backends: Callable[[int], list[Backend]]
) -> None:
    """AWS: a target turns unhealthy after UnhealthyThresholdCount consecutive failed
    checks (reason Target.ResponseCodeMismatch, "Health checks failed with these
    codes: [503]") and takes no requests while others are healthy; it is healthy
    again only after HealthyThresholdCount consecutive passes."""
    alb = make_alb(alb_sandbox, HealthyThresholdCount=3)
    good, bad = backends(2)
    good_id, bad_id = alb.register(good, bad)
    alb.wait_states({good_id: "healthy", bad_id: "healthy"})

    failing_since = time.monotonic()
    bad.health_status = 503
    health = alb.wait_states({bad_id: "unhealthy"})
    assert bad.checks_since(failing_since, 503) >= 2
    assert health[bad_id]["Reason"] == "Target.ResponseCodeMismatch"
    assert health[bad_id]["Description"] == "Health checks failed with these codes: [503]"

    hits = bad.hits
    assert {get(alb.url)[1] for _ in range(6)} == {f"from {good.name}\n"}
    assert bad.hits == hits

    recovering_since = time.monotonic()
    bad.health_status = 200
    alb.wait_states({bad_id: "healthy"})
    assert bad.checks_since(recovering_since, 200) >= 3


def test_all_targets_unhealthy_fails_open(
    alb_sandbox: RunningSandbox, backends: Callable[[int], list[Backend]]
) -> None:
    """AWS: "If a target group contains only unhealthy registered targets, the load
    balancer routes requests to all those targets" (fail open)."""
    alb = make_alb(alb_sandbox)
    b1, b2 = backends(2)
    b1.health_status = b2.health_status = 500
    ids = alb.register(b1, b2)
    alb.wait_states(dict.fromkeys(ids, "unhealthy"))
    answers = {get(alb.url) for _ in range(4)}
    assert answers == {(200, f"from {b1.name}\n"), (200, f"from {b2.name}\n")}


def test_no_registered_targets_answers_503(alb_sandbox: RunningSandbox) -> None:
    """AWS: 503 when "the target groups for the load balancer have no registered
    targets"; counted as HTTPCode_ELB_503_Count."""
    alb = make_alb(alb_sandbox)
    status, body = get(alb.url)
    assert status == 503
    assert "503 Service Temporarily Unavailable" in body
    counters = wait_for(
        "the 503 counted",
        lambda: report(alb_sandbox)["counters"].get(alb.lb_arn, {}).get("", {}),
    )
    assert counters["HTTPCode_ELB_503_Count"] == 1
    assert counters["HTTPCode_ELB_5XX_Count"] == 1


def test_refused_connection_answers_502_and_fails_health_checks(
    alb_sandbox: RunningSandbox, backends: Callable[[int], list[Backend]]
) -> None:
    """AWS: a target that refuses the connection fails its checks with
    Target.FailedHealthChecks, and a request routed to it (fail open) gets 502."""
    alb = make_alb(alb_sandbox)
    [backend] = backends(1)
    backend.stop()  # its port is now closed: connections are refused
    [target] = alb.register(backend)
    health = alb.wait_states({target: "unhealthy"})
    assert health[target]["Reason"] == "Target.FailedHealthChecks"
    assert health[target]["Description"] == "Health checks failed"
    assert get(alb.url)[0] == 502


def test_target_slower_than_idle_timeout_answers_504(
    alb_sandbox: RunningSandbox, backends: Callable[[int], list[Backend]]
) -> None:
    """AWS: 504 when the target does not respond before the load balancer's idle
    timeout (idle_timeout.timeout_seconds) elapses; a quicker answer passes."""
    alb = make_alb(alb_sandbox, idle_timeout=3)  # 0.3 s wall
    [backend] = backends(1)
    [target] = alb.register(backend)
    alb.wait_states({target: "healthy"})
    assert get(alb.url + "/slow?s=1.0")[0] == 504
    assert get(alb.url + "/slow?s=0.05") == (200, f"from {backend.name}\n")


def test_deregistered_target_drains_in_flight_requests_and_takes_no_new_ones(
    alb_sandbox: RunningSandbox, backends: Callable[[int], list[Backend]]
) -> None:
    """AWS: a deregistered target gets no new requests, in-flight requests complete,
    and it shows `draining` (Target.DeregistrationInProgress) for the deregistration
    delay, then leaves the target list (`unused`, Target.NotRegistered)."""
    alb = make_alb(alb_sandbox, delay=20)  # 2 s wall
    leaving, staying = backends(2)
    leaving_id, staying_id = alb.register(leaving, staying)
    alb.wait_states({leaving_id: "healthy", staying_id: "healthy"})

    results: list[tuple[int, str]] = []
    slow = threading.Thread(target=lambda: results.extend([get(alb.url + "/slow?s=1.0")]))
    # Round robin: of two requests one lands on each target.
    slow.start()
    other = get(alb.url + "/slow?s=1.0")
    slow.join()
    results.append(other)
    assert sorted(b for _, b in results) == sorted(
        [f"from {leaving.name}\n", f"from {staying.name}\n"]
    )

    in_flight: list[tuple[int, str]] = []
    for _ in range(2):  # one of these goes to the leaving target
        t = threading.Thread(target=lambda: in_flight.append(get(alb.url + "/slow?s=1.0")))
        t.start()
    wait_for("both requests in flight", lambda: leaving.hits >= 2 and staying.hits >= 2)
    deregistered_at = time.monotonic()
    alb.elbv2.deregister_targets(TargetGroupArn=alb.tg_arn, Targets=[{"Id": leaving_id}])
    health = alb.health()
    assert health[leaving_id] == {
        "State": "draining",
        "Reason": "Target.DeregistrationInProgress",
        "Description": "Target deregistration is in progress",
    }
    wait_for("in-flight requests done", lambda: len(in_flight) == 2, timeout=10)
    assert sorted(in_flight) == sorted(
        [(200, f"from {leaving.name}\n"), (200, f"from {staying.name}\n")]
    )
    hits = leaving.hits
    assert {get(alb.url)[1] for _ in range(4)} == {f"from {staying.name}\n"}
    assert leaving.hits == hits
    if time.monotonic() - deregistered_at < 1.5:  # still inside the 2 s delay
        assert alb.states()[leaving_id] == "draining"
    wait_for("draining over", lambda: leaving_id not in alb.states(), timeout=10)
    [explicit] = alb.elbv2.describe_target_health(
        TargetGroupArn=alb.tg_arn, Targets=[{"Id": leaving_id, "Port": leaving.port}]
    )["TargetHealthDescriptions"]
    assert explicit["TargetHealth"]["State"] == "unused"
    assert explicit["TargetHealth"]["Reason"] == "Target.NotRegistered"


def test_request_still_in_flight_when_the_delay_ends_gets_502(
    alb_sandbox: RunningSandbox, backends: Callable[[int], list[Backend]]
) -> None:
    """AWS: 502 when "the deregistration delay period elapsed for a request being
    handled by a target that was deregistered"."""
    alb = make_alb(alb_sandbox, delay=5)  # 0.5 s wall
    [backend] = backends(1)
    [target] = alb.register(backend)
    alb.wait_states({target: "healthy"})
    answer: list[tuple[int, str]] = []
    thread = threading.Thread(target=lambda: answer.append(get(alb.url + "/slow?s=3")))
    thread.start()
    wait_for("request at the target", lambda: backend.hits >= 1)
    alb.elbv2.deregister_targets(TargetGroupArn=alb.tg_arn, Targets=[{"Id": target}])
    thread.join(10)
    assert answer[0][0] == 502


def test_target_group_without_listener_is_unused_not_in_use(
    alb_sandbox: RunningSandbox, backends: Callable[[int], list[Backend]]
) -> None:
    """AWS: a target of a group no listener forwards to is `unused` with
    Target.NotInUse, and is not health checked."""
    alb = make_alb(alb_sandbox)
    vpc = alb.ec2.describe_vpcs()["Vpcs"][-1]["VpcId"]
    spare = alb.elbv2.create_target_group(
        Name="spare-tg", Protocol="HTTP", Port=8080, VpcId=vpc, HealthCheckPath="/health"
    )["TargetGroups"][0]["TargetGroupArn"]
    [backend] = backends(1)
    alb.tg_arn = spare
    [target] = alb.register(backend)
    health = alb.health()[target]
    assert health["State"] == "unused"
    assert health["Reason"] == "Target.NotInUse"
    time.sleep(0.6)  # more than one health check interval (0.5 s wall)
    assert backend.health_log == []


def test_request_metrics_reach_cloudwatch_per_load_balancer_and_target_group(
    alb_sandbox: RunningSandbox, backends: Callable[[int], list[Backend]]
) -> None:
    """AWS: RequestCount, HTTPCode_Target_2XX_Count and TargetResponseTime in
    AWS/ApplicationELB with dimensions LoadBalancer (app/<name>/<id>) and
    TargetGroup+LoadBalancer; health-check requests are not counted;
    HealthyHostCount per TargetGroup+LoadBalancer."""
    alb = make_alb(alb_sandbox)
    [backend] = backends(1)
    [target] = alb.register(backend)
    alb.wait_states({target: "healthy"})
    for _ in range(5):
        assert get(alb.url)[0] == 200
    counters = wait_for(
        "5 requests counted",
        lambda: (
            (c := report(alb_sandbox)["counters"].get(alb.lb_arn, {}).get(alb.tg_arn, {})).get(
                "RequestCount"
            )
            == 5
            and c
        ),
    )
    assert counters["HTTPCode_Target_2XX_Count"] == 5
    assert counters["TargetResponseTime_count"] == 5

    cloudwatch = alb_sandbox.client("cloudwatch")
    lb_dim = {"Name": "LoadBalancer", "Value": alb.lb_arn.split(":loadbalancer/")[1]}
    tg_dim = {"Name": "TargetGroup", "Value": alb.tg_arn.split(":")[-1]}

    def total(name: str, dims: list[dict[str, str]], stat: str = "Sum") -> float | None:
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/ApplicationELB",
            MetricName=name,
            Dimensions=dims,
            StartTime=datetime.now(UTC) - timedelta(days=1),
            EndTime=datetime.now(UTC) + timedelta(days=30),  # AWS time runs 10x ahead
            Period=60,
            Statistics=[stat],
        )["Datapoints"]
        return sum(p[stat] for p in points) if points else None

    # One AWS minute is 6 s of wall time here; the cloudwatch behaviour puts it.
    # (moto's GetMetricStatistics also sums datums with MORE dimensions than asked,
    # so the exact per-LoadBalancer sum is checked through list_metrics only.)
    both = [tg_dim, lb_dim]
    wait_for("RequestCount in CloudWatch", lambda: total("RequestCount", both) == 5, 30)
    assert total("HTTPCode_Target_2XX_Count", both) == 5
    assert 0 < total("TargetResponseTime", both, "Average") < 1  # type: ignore[operator]
    assert total("HealthyHostCount", both, "Maximum") == 1
    listed = cloudwatch.list_metrics(Namespace="AWS/ApplicationELB", MetricName="RequestCount")
    assert sorted(len(m["Dimensions"]) for m in listed["Metrics"]) == [1, 2]
    assert total("HealthyHostCount", [tg_dim, lb_dim], "Maximum") == 1


def test_unhealthy_host_count_maximum_shows_a_target_unhealthy_for_part_of_a_minute(
    alb_sandbox: RunningSandbox, backends: Callable[[int], list[Backend]]
) -> None:
    """AWS (ALB CloudWatch metrics): UnHealthyHostCount per TargetGroup+LoadBalancer
    comes from the health checks through the minute ("The most useful statistics are
    Average, Minimum, and Maximum"): a target unhealthy for ~10 s of a minute gives
    that minute Maximum >= 1 and Minimum 0, so an alarm on Maximum catches it."""
    alb = make_alb(alb_sandbox)
    [backend] = backends(1)
    [target] = alb.register(backend)
    alb.wait_states({target: "healthy"})
    backend.health_status = 503
    alb.wait_states({target: "unhealthy"})
    backend.health_status = 200  # 2 passing checks (10 AWS s) and it is healthy again
    alb.wait_states({target: "healthy"})

    cloudwatch = alb_sandbox.client("cloudwatch")
    dims = [
        {"Name": "TargetGroup", "Value": alb.tg_arn.split(":")[-1]},
        {"Name": "LoadBalancer", "Value": alb.lb_arn.split(":loadbalancer/")[1]},
    ]

    def spell() -> dict[str, float] | None:
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/ApplicationELB",
            MetricName="UnHealthyHostCount",
            Dimensions=dims,
            StartTime=datetime.now(UTC) - timedelta(days=1),
            EndTime=datetime.now(UTC) + timedelta(days=30),  # AWS time runs 10x ahead
            Period=60,
            Statistics=["Maximum", "Minimum", "Average"],
        )["Datapoints"]
        return next((p for p in points if p["Maximum"] >= 1), None)

    # One AWS minute is 6 s of wall time here; the spell may straddle two minutes.
    point = wait_for("a minute with UnHealthyHostCount Maximum >= 1", spell, 20)
    assert point["Minimum"] == 0
    assert 0 < point["Average"] < 1


def test_instance_web_app_serves_through_the_alb_and_fails_its_check_on_demand(
    alb_sandbox: RunningSandbox,
) -> None:
    """AWS: a registered instance is checked and reached at its own address (here the
    EC2 behaviour's loopback address) on the target port; when its app answers 503
    to /health it turns unhealthy with Target.ResponseCodeMismatch; when it is
    terminated it drains (Target.DeregistrationInProgress)."""
    alb = make_alb(alb_sandbox, delay=30)
    image = bake_web_image(alb_sandbox, alb.ec2)
    instance = launch(alb.ec2, image_id=image, UserData=user_data())
    alb.elbv2.register_targets(
        TargetGroupArn=alb.tg_arn, Targets=[{"Id": instance, "Port": APP_PORT}]
    )
    alb.wait_states({instance: "healthy"}, timeout=30)  # boot delay 3 s wall, then checks
    status, body = get(alb.url)
    assert status == 200
    assert json.loads(body)["instance_id"] == instance

    flag = alb_sandbox.instance_root(instance) / INSTALL_DIR.lstrip("/") / "run/fail-health"
    flag.touch()
    health = alb.wait_states({instance: "unhealthy"})
    assert health[instance]["Reason"] == "Target.ResponseCodeMismatch"

    alb.ec2.terminate_instances(InstanceIds=[instance])
    health = alb.wait_states({instance: "draining"})
    assert health[instance]["Reason"] == "Target.DeregistrationInProgress"


def test_request_and_response_pass_through_unchanged_with_x_forwarded_for(
    alb_sandbox: RunningSandbox, backends: Callable[[int], list[Backend]]
) -> None:
    """AWS: the target's status and body reach the client unchanged; the request body
    reaches the target, with the client's address in X-Forwarded-For."""
    alb = make_alb(alb_sandbox)
    [backend] = backends(1)
    [target] = alb.register(backend)
    alb.wait_states({target: "healthy"})
    payload = "x" * 200_000
    request = urllib.request.Request(  # noqa: S310 - loopback
        alb.url + "/echo", data=payload.encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - loopback
        assert resp.status == 201
        echo = json.loads(resp.read())
    assert echo == {"body": payload, "xff": "127.0.0.1"}


def test_stopped_instance_is_unused_invalid_state_and_takes_no_requests(
    alb_sandbox: RunningSandbox, backends: Callable[[int], list[Backend]]
) -> None:
    """AWS: a registered target whose instance is stopped is `unused` with
    Target.InvalidState ("Target is in the stopped state") and gets no traffic."""
    alb = make_alb(alb_sandbox)
    running, stopping = backends(2)
    running_id, stopping_id = alb.register(running, stopping)
    alb.wait_states({running_id: "healthy", stopping_id: "healthy"})
    alb.ec2.stop_instances(InstanceIds=[stopping_id])
    health = alb.wait_states({stopping_id: "unused"})
    assert health[stopping_id]["Reason"] == "Target.InvalidState"
    assert health[stopping_id]["Description"] == "Target is in the stopped state"
    wait_for(
        "traffic only to the running instance",
        lambda: {get(alb.url)[1] for _ in range(4)} == {f"from {running.name}\n"},
    )
    hits = stopping.hits
    assert {get(alb.url)[1] for _ in range(4)} == {f"from {running.name}\n"}
    assert stopping.hits == hits
