"""Keep each role README's input table in step with its meta/argument_specs.yml.

    python tests/utils/role_readmes.py          # rewrite the tables
    python tests/utils/role_readmes.py --check  # exit 1 if any table is stale (make lint)

Only the text between the INPUTS markers is generated; the rest of a README is prose.
"""

import argparse
import sys
from pathlib import Path

import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"
BEGIN, END = "<!-- BEGIN INPUTS (generated from meta/argument_specs.yml) -->", "<!-- END INPUTS -->"


def cell(value: object) -> str:
    text = " ".join(value) if isinstance(value, list) and all(isinstance(v, str) for v in value) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def default_of(option: dict) -> str:
    if option.get("required"):
        return "required"
    if "default" not in option:
        return ""
    return f"`{yaml.safe_dump(option['default'], default_flow_style=True).strip().removesuffix('...').strip()}`"


def inputs_table(specs: dict) -> str:
    lines = []
    for entry, spec in specs["argument_specs"].items():
        if entry == "validate":  # the same options as main, documented once
            continue
        lines += [f"#### Entry point `{entry}`: {spec.get('short_description', '')}", ""]
        lines += ["| variable | type | default | choices | description |", "|---|---|---|---|---|"]
        for name, option in spec.get("options", {}).items():
            choices = ", ".join(f"`{c}`" for c in option.get("choices", []))
            lines.append(
                f"| `{name}` | {option.get('type', 'str')} | {cell(default_of(option))} | {choices} "
                f"| {cell(option.get('description', ''))} |"
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def render(readme: str, specs: dict) -> str:
    head, rest = readme.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    return f"{head}{BEGIN}\n{inputs_table(specs)}{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale READMEs")
    args = parser.parse_args()
    stale = []
    for spec_file in sorted(ROLES.glob("*/meta/argument_specs.yml")):
        readme_file = spec_file.parent.parent / "README.md"
        readme = readme_file.read_text()
        new = render(readme, yaml.safe_load(spec_file.read_text()))
        if new != readme:
            stale.append(readme_file)
            if not args.check:
                readme_file.write_text(new)
    for path in stale:
        print(f"{'stale' if args.check else 'updated'}: {path.relative_to(ROLES.parent)}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
