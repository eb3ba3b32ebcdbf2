"""`python -m selfheal_sandbox`: the same CLI as the `selfheal-sandbox` script."""

import sys

from .cli import main

sys.exit(main())
