"""selfheal.aws as its users get it: built by ansible-galaxy, accepted by Galaxy's importer,
installed into a project of their own and used from there by FQCN.

The project has its own ansible.cfg (collections_path = ./collections) and a copy of
inventory/sandbox.yml, so neither this repository's ansible.cfg nor its dev-collections
symlink can stand in for the installed copy; every task path the runs print is checked to
lie inside the installed copy (or the project's own playbook).

Run: .venv/bin/pytest tests/integration/test_galaxy_install.py -p no:pytest-ansible
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from sandbox_session import TOOL_PATH, Sandbox, run_project_playbook, running_sandbox, tool

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "utils"))
from stack_resources import remaining  # noqa: E402

GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
TARBALL_NAME = f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"
ROLES = sorted(p.parent.parent.name for p in (REPO / "roles").glob("*/meta/argument_specs.yml"))
# the playbooks users get (awx_configure.yml, for one, runs from a checkout only)
PLAYBOOKS = sorted(
    p.name
    for p in (REPO / "playbooks").glob("*.yml")
    if not any(fnmatch.fnmatch(f"playbooks/{p.name}", pattern) for pattern in GALAXY["build_ignore"])
)

# Development and test material: none of it may reach the tarball.
NOT_COLLECTION = (
    ".ansible",
    ".ci",
    ".git",
    ".sandbox",
    ".venv",
    "benchmarks",
    "collections",
    "dist",
    "ee",
    "molecule",
    "reports",
    "sandbox",
    "tests/integration",
    "tests/output",
    "tests/utils",
    ".ansible-lint",
    ".gitignore",
    "Makefile",
    "ansible.cfg",
    "changelogs/.plugin-cache.yaml",
    "constraints.txt",
    "execution-environment.yml",
    "pyproject.toml",
    "requirements.txt",
    "tests/galaxy-importer.cfg",
)

PROJECT_CFG = """\
[defaults]
inventory = inventory.yml
# `ansible-galaxy collection install` puts collections into the first of these
collections_path = ./collections
interpreter_python = auto_silent
retry_files_enabled = false
"""

# A user's own playbook: one role of the collection by FQCN, with the user's own AWS wiring.
USER_PLAYBOOK = """\
---
- name: Use the network role of selfheal.aws on its own
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/amazon.aws.aws: &aws
      region: "{{ selfheal_aws_region }}"
      endpoint_url: "{{ selfheal_aws_endpoint_url | default(omit, true) }}"
      access_key: "{{ selfheal_aws_access_key | default(omit, true) }}"
      secret_key: "{{ selfheal_aws_secret_key | default(omit, true) }}"
    group/community.aws.aws: *aws
  tasks:
    - name: Build or delete a two-AZ network of my own
      ansible.builtin.include_role:
        name: selfheal.aws.network
      vars:
        network_stack: mynet
        network_az_count: 2
"""


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    result = subprocess.run(
        command, cwd=cwd, env=env or tool_env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def tool_env() -> dict[str, str]:
    """The caller's environment with our venv first and no ANSIBLE_* pointing back at the repository."""
    env = os.environ | {"PATH": TOOL_PATH, "ANSIBLE_NOCOLOR": "1"}
    for name in ("ANSIBLE_CONFIG", "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS"):
        env.pop(name, None)
    return env


def short_description(role: str) -> str:
    specs = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return specs["argument_specs"]["main"]["short_description"]


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run([tool("ansible-galaxy"), "collection", "build", "--output-path", str(out), str(REPO)], cwd=REPO)
    return out / TARBALL_NAME


def test_tarball_holds_the_collection_and_nothing_else(tarball: Path) -> None:
    with tarfile.open(tarball) as tar:
        names = {member.name.removeprefix("./") for member in tar.getmembers()}
    strays = sorted(name for name in names if any(name == p or name.startswith(f"{p}/") for p in NOT_COLLECTION))
    assert strays == []
    needed = {"MANIFEST.json", "FILES.json", "README.md", "meta/runtime.yml", "changelogs/changelog.yaml"}
    needed |= {f"playbooks/{playbook}" for playbook in PLAYBOOKS}
    for role in ROLES:
        needed |= {f"roles/{role}/{f}" for f in ("README.md", "meta/main.yml", "meta/argument_specs.yml")}
    assert sorted(needed - names) == []


def test_galaxy_importer_accepts_the_tarball(tarball: Path, tmp_path: Path) -> None:
    # The importer writes importer_result.json next to the tarball.
    shutil.copy(tarball, tmp_path)
    env = tool_env() | {"GALAXY_IMPORTER_CONFIG": str(REPO / "tests" / "galaxy-importer.cfg")}
    output = run([sys.executable, "-m", "galaxy_importer.main", TARBALL_NAME], cwd=tmp_path, env=env)
    assert "Importer processing completed successfully" in output
    # Galaxy shows warnings (a role without a description, a lint finding) on the collection's page.
    assert [line for line in output.splitlines() if re.match(r"(ERROR|WARNING)\b", line)] == []

    result: dict[str, Any] = json.loads((tmp_path / "importer_result.json").read_text())
    assert result["metadata"]["dependencies"] == GALAXY["dependencies"]
    assert result["requires_ansible"] == yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())["requires_ansible"]
    found = {(c["content_type"], c["name"]): c for c in result["contents"]}
    assert sorted(name for kind, name in found if kind == "playbook") == PLAYBOOKS
    assert {name: found[("role", name)]["description"] for name in ROLES if ("role", name) in found} == {
        name: short_description(name) for name in ROLES
    }


@pytest.fixture(scope="module")
def project(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's project with the tarball installed the way the README says."""
    project = tmp_path_factory.mktemp("user-project")
    (project / "ansible.cfg").write_text(PROJECT_CFG)
    shutil.copy(REPO / "inventory" / "sandbox.yml", project / "inventory.yml")
    (project / "network.yml").write_text(USER_PLAYBOOK)
    # --offline: the dependencies come with the `ansible` package; never ask Galaxy.
    run([tool("ansible-galaxy"), "collection", "install", "--offline", str(tarball)], cwd=project)
    return project


def assert_ran_from(result: subprocess.CompletedProcess[str], project: Path, own_playbook: str | None = None) -> None:
    """The play succeeded, with the project's ansible.cfg and the installed copy only (needs -vv)."""
    assert result.returncode == 0, f"{result.args} failed:\n{result.stdout[-6000:]}\n{result.stderr}"
    assert re.search(r"localhost\s+: ok=\d+\s+changed=\d+\s+unreachable=0\s+failed=0", result.stdout)
    assert f"Using {project}/ansible.cfg as config file" in result.stdout
    installed = str(project / "collections" / "ansible_collections" / "selfheal" / "aws") + "/"
    allowed = (installed, str(project / own_playbook)) if own_playbook else (installed,)
    task_paths = re.findall(r"^task path: (.+):\d+$", result.stdout, flags=re.MULTILINE)
    assert task_paths, "no task path printed: run with -vv"
    assert [path for path in task_paths if not path.startswith(allowed)] == []
    if own_playbook:
        assert any(path.startswith(f"{installed}roles/") for path in task_paths)


def test_installed_collection_builds_and_tears_down_from_a_project_of_its_own(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    listed = json.loads(
        run([tool("ansible-galaxy"), "collection", "list", "selfheal.aws", "--format", "json"], cwd=project)
        .split("\n[WARNING]")[0]
        .strip()
    )
    assert {path: list(found) for path, found in listed.items()} == {
        str(project / "collections" / "ansible_collections"): ["selfheal.aws"]
    }
    assert listed[str(project / "collections" / "ansible_collections")]["selfheal.aws"]["version"] == GALAXY["version"]

    # 5 times faster than AWS: boot and draining waits shrink, the behaviour does not change.
    with running_sandbox(tmp_path_factory.mktemp("sandbox"), time_scale=5) as sandbox:
        site = run_project_playbook(sandbox, project, "selfheal.aws.site", ["-vv"])
        assert_ran_from(site, project)
        built = left_of(sandbox, "selfheal")
        assert {"vpcs", "images", "launch_templates", "load_balancers", "autoscaling_groups", "alarms"} <= set(built)

        mine = run_project_playbook(sandbox, project, "network.yml", ["-vv", "-e", "network_state=present"])
        assert_ran_from(mine, project, "network.yml")
        network = left_of(sandbox, "mynet")
        assert (len(network["vpcs"]), len(network["subnets"]), len(network["security_groups"])) == (1, 2, 2)

        mine = run_project_playbook(sandbox, project, "network.yml", ["-vv", "-e", "network_state=absent"])
        assert_ran_from(mine, project, "network.yml")
        assert left_of(sandbox, "mynet") == {}

        teardown = run_project_playbook(sandbox, project, "selfheal.aws.teardown", ["-vv"])
        assert_ran_from(teardown, project)
        assert left_of(sandbox, "selfheal") == {}


def left_of(sandbox: Sandbox, stack: str) -> dict[str, list[str]]:
    env = sandbox.env()
    return remaining(
        stack,
        endpoint_url=sandbox.endpoint,
        region_name=env.get("AWS_DEFAULT_REGION", "us-east-1"),
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
