"""execution-environment.yml renders a build context that installs what the collection is tested with.

`ansible-builder create` only writes files (no container engine is needed, none is used);
the checks read what an image build would run: the base image, ansible-core and
ansible-runner, the collection tarball and its dependencies, the Python and system
requirements, pinned as constraints.txt and the `ansible` package pin them.

Run: .venv/bin/pytest tests/integration/test_execution_environment.py -p no:pytest-ansible
"""

from __future__ import annotations

import filecmp
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from sandbox_session import TOOL_PATH, tool

REPO = Path(__file__).resolve().parents[2]
EE = yaml.safe_load((REPO / "execution-environment.yml").read_text())
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
TARBALL_NAME = f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"
PINS = dict(line.split("==", 1) for line in (REPO / "constraints.txt").read_text().split() if "==" in line)


def run(command: list[str], cwd: Path) -> str:
    result = subprocess.run(
        command, cwd=cwd, env={"PATH": TOOL_PATH}, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"{command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rendered build context, from a copy of the definition next to a fresh tarball."""
    work = tmp_path_factory.mktemp("ee")
    shutil.copy(REPO / "execution-environment.yml", work)
    shutil.copytree(REPO / "ee", work / "ee")
    run([tool("ansible-galaxy"), "collection", "build", "--output-path", str(work / "dist"), str(REPO)], cwd=REPO)
    run(
        [
            tool("ansible-builder"),
            "create",
            "--file",
            "execution-environment.yml",
            "--context",
            "context",
            "--output-filename",
            "Containerfile",
        ],
        cwd=work,
    )
    return work / "context"


def test_containerfile_starts_from_the_base_image_with_pinned_ansible(context: Path) -> None:
    containerfile = (context / "Containerfile").read_text()
    assert f'ARG EE_BASE_IMAGE="{EE["images"]["base_image"]["name"]}"' in containerfile
    assert "FROM $EE_BASE_IMAGE AS base" in containerfile
    refs = re.search(r'^ARG ANSIBLE_INSTALL_REFS="(.*)"$', containerfile, flags=re.MULTILINE)
    assert refs is not None
    assert sorted(refs.group(1).split()) == [
        f"ansible-core=={PINS['ansible-core']}",
        f"ansible-runner=={PINS['ansible-runner']}",
    ]


def test_collection_tarball_is_installed_with_its_dependencies(context: Path) -> None:
    containerfile = (context / "Containerfile").read_text()
    shipped = context / "_build" / "collections" / TARBALL_NAME
    assert filecmp.cmp(shipped, context.parent / "dist" / TARBALL_NAME, shallow=False)
    requirements = yaml.safe_load((context / "_build" / "requirements.yml").read_text())["collections"]
    [tarball] = [r["name"] for r in requirements if r.get("type") == "file"]
    # the tarball is copied to the name requirements.yml installs it from, before the install runs
    copy = containerfile.index(f"COPY _build/collections/selfheal-aws-*.tar.gz {tarball}\n")
    install = containerfile.index(
        "ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml"
    )
    assert copy < install

    # every dependency of galaxy.yml, at the version the `ansible` package bundles (the tested one)
    pinned = {r["name"]: r["version"] for r in requirements if r.get("type") != "file"}
    assert sorted(pinned) == sorted(GALAXY["dependencies"])
    for name, version in pinned.items():
        assert version in SpecifierSet(GALAXY["dependencies"][name]), f"{name} {version} outside galaxy.yml's range"
        assert version == bundled_version(name), f"{name}: the EE pins {version}, the tests run {bundled_version(name)}"


def test_python_and_system_requirements_reach_the_introspection(context: Path) -> None:
    containerfile = (context / "Containerfile").read_text()
    assert "COPY _build/requirements.txt requirements.txt" in containerfile
    assert "COPY _build/bindep.txt bindep.txt" in containerfile
    assert "introspect --user-pip=requirements.txt --user-bindep=bindep.txt" in containerfile
    python = dict(
        line.split("==") for line in (context / "_build" / "requirements.txt").read_text().split() if "==" in line
    )
    assert {name: python.get(name) for name in ("boto3", "botocore")} == {n: PINS[n] for n in ("boto3", "botocore")}
    bindep = (context / "_build" / "bindep.txt").read_text()
    assert "openssh-clients [platform:rpm]" in bindep


def bundled_version(collection: str) -> str:
    """Version of a collection in the `ansible` package of the running .venv."""
    import ansible_collections

    for root in ansible_collections.__path__:
        manifest = Path(root, *collection.split("."), "MANIFEST.json")
        if manifest.is_file():
            return json.loads(manifest.read_text())["collection_info"]["version"]
    raise LookupError(f"{collection} is not installed next to ansible")
