"""The AWX surveys ask for exactly what the argument specs accept.

Every field of every survey in playbooks/vars/awx_job_templates.yml sets a variable that
one argument spec owns (a role's roles/*/meta/argument_specs.yml, entry point `main`, or a
playbook's playbooks/vars/argument_specs.yml), and must agree with it: the AWX field type
matches the spec type, the choices and the default are the spec's. A survey that drifted
would offer values the playbook then refuses, or silently deploy other defaults than the CLI.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
JOB_TEMPLATES = REPO / "playbooks/vars/awx_job_templates.yml"
AWX_CONFIGURE = REPO / "playbooks/awx_configure.yml"

# AWX survey type -> the argument spec type its answers have
SURVEY_TYPES = {
    "integer": "int",
    "float": "float",
    "multiplechoice": "str",
    "text": "str",
    "textarea": "str",
    "password": "str",
}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_specs() -> dict[str, tuple[str, dict[str, Any]]]:
    """variable -> (owner, its option in the argument spec), over every role and playbook spec."""
    entries = [
        (f"roles/{path.parts[-3]}", load_yaml(path)["argument_specs"]["main"])
        for path in sorted(REPO.glob("roles/*/meta/argument_specs.yml"))
    ]
    playbook_specs = load_yaml(REPO / "playbooks/vars/argument_specs.yml")["argument_specs"]
    entries += [(f"playbooks/{name}.yml", entry) for name, entry in playbook_specs.items()]
    specs: dict[str, tuple[str, dict[str, Any]]] = {}
    for owner, entry in entries:
        for variable, option in entry["options"].items():
            assert variable not in specs, (
                f"{variable} is in the argument specs of both {specs[variable][0]} and {owner}"
            )
            specs[variable] = (owner, option)
    return specs


def load_job_templates() -> list[dict[str, Any]]:
    return load_yaml(JOB_TEMPLATES)["selfheal_awx_job_templates"]


def survey_fields(job_templates: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (template["name"], field) for template in job_templates for field in template.get("survey", {}).get("spec", [])
    ]


def drift(field: dict[str, Any], specs: dict[str, tuple[str, dict[str, Any]]]) -> list[str]:
    """What in this survey field disagrees with the argument spec of its variable; [] if nothing."""
    variable, kind = field.get("variable"), field.get("type")
    if variable not in specs:
        return [f"{variable}: no argument spec has this variable"]
    owner, option = specs[variable]
    where = f"{variable} (spec in {owner})"
    spec_type, spec_choices = option.get("type", "str"), option.get("choices")
    problems = []

    if kind not in SURVEY_TYPES:
        return [f"{where}: survey type {kind!r} is not one of {sorted(SURVEY_TYPES)}"]
    if SURVEY_TYPES[kind] != spec_type:
        problems.append(f"{where}: survey type {kind} gives {SURVEY_TYPES[kind]}, the spec wants {spec_type}")
    if kind == "multiplechoice":
        if field.get("choices") != spec_choices:
            problems.append(f"{where}: survey choices {field.get('choices')} != spec choices {spec_choices}")
    elif spec_choices is not None:
        problems.append(f"{where}: the spec allows only {spec_choices}: use a multiplechoice field, not {kind}")
    if (kind == "password") != bool(option.get("no_log")):
        problems.append(
            f"{where}: a password field if and only if the spec says no_log (no_log={option.get('no_log')})"
        )

    # AWX sends no answer for an empty default; then the spec's own default (or none) applies.
    default = field.get("default", "")
    if "default" in option:
        if type(default) is not type(option["default"]) or default != option["default"]:
            problems.append(f"{where}: survey default {default!r} != spec default {option['default']!r}")
    elif default != "":
        problems.append(f"{where}: survey default {default!r}, but the spec has no default")
    if option.get("required") and not field.get("required"):
        problems.append(f"{where}: the spec requires it, the survey does not")
    return problems


SPECS = load_specs()
FIELDS = survey_fields(load_job_templates())


def test_every_job_template_has_a_playbook_and_the_expected_surveys() -> None:
    templates = {template["name"]: template for template in load_job_templates()}
    assert list(templates) == ["Deploy", "Verify", "Game day", "Roll out", "Tear down"]
    assert all(template["playbook"].startswith("playbooks/") for template in templates.values())
    assert {name for name, template in templates.items() if "survey" in template} == {
        "Deploy",
        "Game day",
        "Roll out",
        "Tear down",
    }


@pytest.mark.parametrize(("template", "field"), FIELDS, ids=[f"{t}/{f['variable']}" for t, f in FIELDS])
def test_survey_field_matches_its_argument_spec(template: str, field: dict[str, Any]) -> None:
    assert drift(field, SPECS) == []


@pytest.mark.parametrize(("template", "field"), FIELDS, ids=[f"{t}/{f['variable']}" for t, f in FIELDS])
def test_survey_default_is_within_the_fields_bounds(template: str, field: dict[str, Any]) -> None:
    default = field.get("default", "")
    if default == "":
        assert field["required"], f"{field['variable']}: no default, so the survey must require an answer"
        return
    size = len(default) if field["type"] in {"text", "textarea", "password"} else default
    if field["type"] == "multiplechoice":
        assert default in field["choices"]
    else:
        assert field["min"] <= size <= field["max"], f"{field['variable']}: default {default!r} outside min/max"


def test_variables_are_unique_within_each_survey() -> None:
    for template in load_job_templates():
        variables = [field["variable"] for field in template.get("survey", {}).get("spec", [])]
        assert len(variables) == len(set(variables)), f"{template['name']} asks twice for the same variable"


def test_game_day_survey_offers_every_chaos_scenario() -> None:
    game_day = next(t for t in load_job_templates() if t["name"] == "Game day")
    scenario = next(f for f in game_day["survey"]["spec"] if f["variable"] == "chaos_scenario")
    assert scenario["choices"] == [
        "terminate",
        "stop",
        "crash_app",
        "fail_health",
        "cpu_stress",
        "az_outage",
        "scale_out_load",
    ]


def test_workflow_runs_deploy_then_verify_then_game_day() -> None:
    task = next(t for t in load_yaml(AWX_CONFIGURE)[0]["tasks"] if "awx.awx.workflow_job_template" in t)
    nodes = {node["identifier"]: node for node in task["awx.awx.workflow_job_template"]["workflow_nodes"]}
    names = {template["name"] for template in load_job_templates()}
    order, node = [], nodes["deploy"]
    while True:
        assert node["unified_job_template"]["name"] in names
        order.append(node["unified_job_template"]["name"])
        following = node.get("related", {}).get("success_nodes", [])
        if not following:
            break
        node = nodes[following[0]["identifier"]]
    assert order == ["Deploy", "Verify", "Game day"]


# A deliberately wrong copy of a survey must be caught: each case breaks one field.
def _field(template: str, variable: str) -> dict[str, Any]:
    return copy.deepcopy(next(f for t, f in FIELDS if t == template and f["variable"] == variable))


DRIFTS = [
    ("renamed-variable", "Deploy", "autoscaling_min_size", {"variable": "autoscaling_minimum"}, "no argument spec"),
    ("integer-default-changed", "Deploy", "autoscaling_max_size", {"default": 7}, "survey default 7 != spec default 6"),
    ("default-as-text", "Deploy", "autoscaling_desired_capacity", {"default": "3"}, "survey default '3'"),
    ("integer-asked-as-text", "Deploy", "autoscaling_min_size", {"type": "text"}, "the spec wants int"),
    ("float-asked-as-integer", "Game day", "chaos_slo_min_success_rate", {"type": "integer"}, "the spec wants float"),
    ("choice-dropped", "Game day", "chaos_scenario", {"choices": ["terminate", "stop"]}, "survey choices"),
    ("choices-as-free-text", "Deploy", "autoscaling_health_check_type", {"type": "text"}, "use a multiplechoice"),
    ("text-default-changed", "Roll out", "golden_ami_version", {"default": "2.0.0"}, "survey default '2.0.0'"),
    ("password-for-a-plain-value", "Roll out", "golden_ami_version", {"type": "password"}, "no_log"),
    ("default-where-the-spec-has-none", "Tear down", "selfheal_teardown_confirm", {"default": "x"}, "no default"),
    ("unknown-survey-type", "Deploy", "autoscaling_min_size", {"type": "slider"}, "not one of"),
]


@pytest.mark.parametrize(
    ("template", "variable", "change", "expected"), [d[1:] for d in DRIFTS], ids=[d[0] for d in DRIFTS]
)
def test_drifted_survey_field_is_reported(template: str, variable: str, change: dict[str, Any], expected: str) -> None:
    field = _field(template, variable) | change
    problems = drift(field, SPECS)
    assert any(expected in problem for problem in problems), problems


def test_drifted_argument_spec_is_reported() -> None:
    specs = copy.deepcopy(SPECS)
    owner, option = specs["chaos_scenario"]
    specs["chaos_scenario"] = (owner, option | {"choices": [*option["choices"], "reboot"]})
    assert drift(_field("Game day", "chaos_scenario"), specs) == [
        "chaos_scenario (spec in playbooks/chaos.yml): survey choices "
        "['terminate', 'stop', 'crash_app', 'fail_health', 'cpu_stress', 'az_outage', 'scale_out_load'] "
        "!= spec choices "
        "['terminate', 'stop', 'crash_app', 'fail_health', 'cpu_stress', 'az_outage', 'scale_out_load', 'reboot']"
    ]


def test_password_field_matches_a_no_log_spec_only() -> None:
    specs = {"secret": ("test", {"type": "str", "no_log": True})}
    assert drift({"variable": "secret", "type": "password", "required": True}, specs) == []
    assert "no_log" in drift({"variable": "secret", "type": "text", "required": True}, specs)[0]
