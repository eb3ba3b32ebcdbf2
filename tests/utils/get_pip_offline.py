# Copyright: selfheal.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Offline stand-in for the get-pip.py that ansible-test downloads.

ansible-test bootstraps pip in every virtual environment it creates (`--venv` delegation
and the per-tool sanity venvs, even with `--local`) by running a get-pip.py it fetches
from a host this project's machines cannot reach. `make sanity` copies this file to
~/.ansible/test/cache/get_pip_<pip version>.py, where ansible-test looks before
downloading. It is run as a script with the arguments meant for get-pip.py, e.g.
`--disable-pip-version-check pip==25.2 --no-setuptools --no-wheel`: it installs pip from
the interpreter's bundled wheel (ensurepip), then the requested pip from the package
index, which is reachable.
"""

from __future__ import annotations

import subprocess
import sys

# get-pip.py options that `pip install` does not know
GET_PIP_ONLY_OPTIONS = ("--no-setuptools", "--no-wheel")


def main() -> None:
    """Bootstrap pip for sys.executable, then install what was asked for."""
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_OPTIONS]
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--upgrade", *args])


if __name__ == "__main__":
    main()
