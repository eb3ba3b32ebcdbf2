"""The AWX job templates work: each one's playbook, run the way AWX runs it, succeeds.

No AWX server here, so each job template of playbooks/vars/awx_job_templates.yml runs
through ansible-runner (the engine AWX runs jobs with) the way AWX launches it: a private
data dir holding the inventory, the project checkout as the working directory, the survey
answers (their defaults) as extra vars. One private sandbox, in workflow order: Deploy,
Verify, Game day, then Tear down (first with a wrong confirmation, which must delete
nothing). Templates whose playbook does not exist yet are reported as skipped. Roll out is
not run: it is site.yml with golden_ami_version, whose survey default is the version Deploy
bakes, so it would repeat Deploy's run (another minute of wall time) and prove nothing new.

Run: .venv/bin/pytest tests/integration/test_awx_job_templates.py -p no:pytest-ansible
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ansible_runner
import pytest
import yaml
from sandbox_session import REPO, Sandbox, playbook_env, running_sandbox, tool
from test_bad_input import created

AWX_COLLECTION = REPO / ".ansible/awx-collection/ansible_collections/awx/awx"
JOB_TEMPLATES = {
    t["name"]: t
    for t in yaml.safe_load((REPO / "playbooks/vars/awx_job_templates.yml").read_text())["selfheal_awx_job_templates"]
}
STACK = yaml.safe_load((REPO / "inventory/sandbox.yml").read_text())["all"]["vars"]["selfheal_stack"]


def survey_defaults(template: str) -> dict[str, Any]:
    """The extra vars AWX sends when every survey question keeps its default (empty ones are not sent)."""
    spec = JOB_TEMPLATES[template].get("survey", {}).get("spec", [])
    return {field["variable"]: field["default"] for field in spec if field.get("default", "") != ""}


def run_job_template(
    sandbox: Sandbox, private_data_dir: Path, template: str, answers: dict[str, Any] | None = None
) -> tuple[str, int, str]:
    """Launch template as AWX would; (status, rc, stdout)."""
    job = JOB_TEMPLATES[template]
    # AWX writes the job's inventory into the private data dir; ours is the sandbox inventory.
    (private_data_dir / "inventory").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "inventory/sandbox.yml", private_data_dir / "inventory/hosts.yml")
    result = ansible_runner.run(
        private_data_dir=str(private_data_dir),
        project_dir=str(REPO),
        playbook=job["playbook"],
        extravars=survey_defaults(template) | (answers or {}),
        tags=job.get("job_tags"),
        envvars=playbook_env(sandbox),
        quiet=True,
        timeout=900,
    )
    return result.status, result.rc, result.stdout.read()


def sandbox_errors(sandbox: Sandbox) -> str:
    """The end of the sandbox's log when it logged an error: a 500 in a job is often the sandbox's."""
    log = sandbox.state_dir / "sandbox.log"
    text = log.read_text(errors="replace") if log.is_file() else ""
    return f"\nsandbox.log:\n{text[-4000:]}" if "Traceback" in text or "ERROR" in text else ""


def asg(sandbox: Sandbox) -> dict[str, Any] | None:
    groups = sandbox.client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
    return groups[0] if groups else None


def live_instances(sandbox: Sandbox) -> list[str]:
    reservations = sandbox.client("ec2").describe_instances()["Reservations"]
    return [i["InstanceId"] for r in reservations for i in r["Instances"] if i["State"]["Name"] != "terminated"]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    # 5 times faster than AWS (the Game day template scales its load by it); slow enough that
    # the idle stack's scale-in alarm (5 low minutes = 60 s here) waits until after Deploy's checks.
    with running_sandbox(tmp_path_factory.mktemp("awx-sandbox"), time_scale=5) as running:
        yield running


@pytest.mark.parametrize("template", list(JOB_TEMPLATES))
def test_job_template_playbook_exists(template: str) -> None:
    playbook = JOB_TEMPLATES[template]["playbook"]
    if not (REPO / playbook).is_file():
        pytest.skip(f"{playbook} does not exist yet: the {template} job template cannot run and was not run")


def test_job_templates_deploy_then_tear_down(sandbox: Sandbox, tmp_path: Path) -> None:
    ran = []

    def launch(template: str, answers: dict[str, Any] | None = None) -> tuple[str, int, str]:
        ran.append(template)
        status, rc, out = run_job_template(sandbox, tmp_path / f"job-{len(ran)}", template, answers)
        return status, rc, out + sandbox_errors(sandbox)

    status, rc, out = launch("Deploy")
    assert (status, rc) == ("successful", 0), out[-3000:]
    group, deploy = asg(sandbox), survey_defaults("Deploy")
    assert group is not None, "Deploy created no Auto Scaling group"
    assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"], group["HealthCheckType"]) == (
        deploy["autoscaling_min_size"],
        deploy["autoscaling_max_size"],
        deploy["autoscaling_desired_capacity"],
        deploy["autoscaling_health_check_type"],
    )

    for template in ("Verify", "Game day"):
        if (REPO / JOB_TEMPLATES[template]["playbook"]).is_file():
            status, rc, out = launch(template)
            assert (status, rc) == ("successful", 0), f"{template}:\n{out[-3000:]}"

    status, rc, out = launch("Tear down", {"selfheal_teardown_confirm": f"not-{STACK}"})
    assert status == "failed", out[-3000:]
    assert f"selfheal_teardown_confirm=not-{STACK} does not match selfheal_stack={STACK}" in out
    assert asg(sandbox) is not None, "a wrong confirmation deleted the Auto Scaling group"

    status, rc, out = launch("Tear down", {"selfheal_teardown_confirm": STACK})
    assert (status, rc) == ("successful", 0), out[-3000:]
    left = created(sandbox)
    # Terminated instances stay listed for a while, as on AWS: only live ones are left over.
    left.pop("instances", None)
    assert left == {}, "Tear down left resources behind"
    assert live_instances(sandbox) == [], "Tear down left instances running"
    print(f"job templates run: {ran}")


def test_awx_configure_passes_syntax_check_with_awx_collection() -> None:
    if not AWX_COLLECTION.is_dir():
        pytest.fail(f"{AWX_COLLECTION} is missing: run `make awx-collection`")
    result = subprocess.run(
        [tool("ansible-playbook"), "--syntax-check", "playbooks/awx_configure.yml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_awx_configure_refuses_to_run_without_a_git_url() -> None:
    # An unreachable controller: the input check must stop the play before any call to it.
    result = subprocess.run(
        [
            tool("ansible-playbook"),
            "playbooks/awx_configure.yml",
            "-e",
            "selfheal_awx_controller_host=http://127.0.0.1:9",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "selfheal_awx_scm_url is empty" in output, output[-2000:]
    assert "TASK [Create the organization]" not in output
