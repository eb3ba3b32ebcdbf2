"""Every module and every role entry point of the collection renders in ansible-doc, documented.

What a user sees with `ansible-doc selfheal.aws.<module>` and `ansible-doc -t role
selfheal.aws.<role>`: each must load without error and describe itself and every option.
New modules and roles are picked up from plugins/modules/ and roles/ by themselves.
(antsibull-docs lint-collection-docs is not used: with constraints.txt's docutils it only
resolves to a Sphinx that fails to import on Python 3.12; ansible-test sanity's
validate-modules and ansible-doc tests check the module docs' schema in `make sanity`.)

Run: .venv/bin/pytest tests/integration/test_docs.py -p no:pytest-ansible
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sandbox_session import DEV_COLLECTION, REPO, TOOL_PATH, tool

MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
ROLES = sorted(p.parent.parent.name for p in (REPO / "roles").glob("*/meta/argument_specs.yml"))


def ansible_doc(*args: str) -> str:
    """ansible-doc from the repository root: its ansible.cfg finds the collection in dev-collections."""
    if not DEV_COLLECTION.is_dir():
        raise FileNotFoundError(f"{DEV_COLLECTION} is missing: run `make dev-collections`")
    result = subprocess.run(
        [tool("ansible-doc"), *args],
        cwd=REPO,
        env={"PATH": TOOL_PATH, "HOME": str(Path.home()), "ANSIBLE_NOCOLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"ansible-doc {' '.join(args)} failed:\n{result.stderr}"
    # ansible-doc reports plugins it could not load as warnings and still exits 0
    assert "[ERROR]" not in result.stderr, result.stderr
    assert "could not" not in result.stderr.lower(), result.stderr
    return result.stdout


def undocumented_options(options: dict[str, Any], prefix: str = "") -> list[str]:
    missing = []
    for name, option in (options or {}).items():
        if not option.get("description"):
            missing.append(f"{prefix}{name}")
        missing += undocumented_options(option.get("suboptions", {}), f"{prefix}{name}.")
    return missing


@pytest.fixture(scope="module")
def module_docs() -> dict[str, Any]:
    if not MODULES:
        return {}
    return json.loads(ansible_doc("--json", *(f"selfheal.aws.{m}" for m in MODULES)))


@pytest.mark.parametrize("module", MODULES)
def test_module_is_documented(module: str, module_docs: dict[str, Any]) -> None:
    entry = module_docs.get(f"selfheal.aws.{module}")
    assert entry is not None, f"ansible-doc returned nothing for selfheal.aws.{module}"
    doc = entry["doc"]
    assert doc.get("short_description")
    assert doc.get("description")
    assert undocumented_options(doc.get("options", {})) == []
    assert entry.get("examples", "").strip(), "no EXAMPLES"
    assert entry.get("return") is not None, "no RETURN"


@pytest.fixture(scope="module")
def role_docs() -> dict[str, Any]:
    return json.loads(ansible_doc("-t", "role", "--json", *(f"selfheal.aws.{r}" for r in ROLES)))


@pytest.mark.parametrize("role", ROLES)
def test_role_entry_points_are_documented(role: str, role_docs: dict[str, Any]) -> None:
    entry_points = role_docs[f"selfheal.aws.{role}"]["entry_points"]
    assert {"main", "validate"} <= set(entry_points)
    for name, spec in entry_points.items():
        assert spec.get("short_description"), f"{role}:{name} has no short_description"
        assert spec.get("description"), f"{role}:{name} has no description"
        assert undocumented_options(spec.get("options", {}), f"{name}: ") == []


def test_roles_render_as_text() -> None:
    text = ansible_doc("-t", "role", *(f"selfheal.aws.{r}" for r in ROLES))
    for role in ROLES:
        assert f"> ROLE: *selfheal.aws.{role}* " in text
    assert text.count("ENTRY POINT: *main* - ") == len(ROLES)
    assert text.count("ENTRY POINT: *validate* - ") == len(ROLES)


def test_every_role_is_listed_with_its_entry_points() -> None:
    listed = json.loads(ansible_doc("-t", "role", "--list", "--json", "selfheal.aws"))
    assert sorted(listed) == [f"selfheal.aws.{r}" for r in ROLES]
    for role, info in listed.items():
        assert {"main", "validate"} <= set(info["entry_points"]), role
