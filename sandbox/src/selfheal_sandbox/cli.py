"""`selfheal-sandbox up | down | status | mailbox | serve`.

Defaults: state dir `.sandbox` in the working directory ($SELFHEAL_SANDBOX_STATE_DIR),
port 4599 ($SELFHEAL_SANDBOX_PORT; 0 lets the OS pick), region us-east-1,
time scale 1 (AWS speed).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Sequence

from . import __version__
from .state import DEFAULT_REGION, ENV_PORT, ENV_STATE_DIR, StateDir, default_port

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"port {text!r} is not allowed: give 0-65535 (0 lets the OS pick)"
        )
    return value


def _time_scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(
            f"time scale {text!r} is not allowed: give a number > 0 "
            "(10 runs ten times faster than AWS)"
        )
    return value


def _region(text: str) -> str:
    if not _REGION.match(text):
        raise argparse.ArgumentTypeError(
            f"region {text!r} is not an AWS region name (e.g. {DEFAULT_REGION})"
        )
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selfheal-sandbox",
        description="A local AWS sandbox with behaviour: moto plus what AWS does on its own.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_state_dir(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--state-dir",
            metavar="DIR",
            help=f"state directory (default: ${ENV_STATE_DIR} or ./.sandbox)",
        )

    def add_server_options(p: argparse.ArgumentParser, port_default: int) -> None:
        add_state_dir(p)
        p.add_argument(
            "--port",
            type=_port,
            default=port_default,
            help=f"API port on 127.0.0.1 (default: ${ENV_PORT} or 4599; 0 lets the OS pick)",
        )
        p.add_argument(
            "--time-scale",
            type=_time_scale,
            default=1.0,
            metavar="N",
            help="run N times faster than AWS (default: 1)",
        )
        p.add_argument("--region", type=_region, default=DEFAULT_REGION, help="default region")

    # Resolved lazily so a bad $SELFHEAL_SANDBOX_PORT only bothers commands that use it.
    try:
        port_default = default_port()
    except ValueError as e:
        port_default = -1
        port_error = str(e)
    else:
        port_error = ""
    parser.set_defaults(port_error=port_error)

    up = sub.add_parser("up", help="start the sandbox in the background; print the endpoint")
    add_server_options(up, port_default)
    down = sub.add_parser("down", help="stop the sandbox and every process it started")
    add_state_dir(down)
    status = sub.add_parser("status", help="show what runs (--json for tools)")
    add_state_dir(status)
    status.add_argument("--json", action="store_true", help="print JSON")
    mailbox = sub.add_parser(
        "mailbox", help="list the email SNS delivered, oldest first (--json for tools)"
    )
    add_state_dir(mailbox)
    mailbox.add_argument(
        "--confirm",
        action="store_true",
        help="first open the link of every pending subscription confirmation, "
        "as its recipient would",
    )
    mailbox.add_argument("--json", action="store_true", help="print JSON")
    serve = sub.add_parser("serve", help="run the server in the foreground (what `up` starts)")
    add_server_options(serve, port_default)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    state = StateDir.at(args.state_dir)
    if getattr(args, "port", 0) == -1:
        print(f"error: {args.port_error}", file=sys.stderr)
        return 2

    if args.command == "serve":
        from .server import ServerConfig, serve  # noqa: PLC0415 - moto import is slow

        return serve(ServerConfig(state, args.port, args.region, args.time_scale))

    from . import control  # noqa: PLC0415

    if args.command == "up":
        return control.up(state, args.port, args.region, args.time_scale)
    if args.command == "down":
        return control.down(state)
    if args.command == "mailbox":
        from . import mailbox  # noqa: PLC0415

        return mailbox.show(state, args.confirm, args.json)
    return control.show_status(state, args.json)


if __name__ == "__main__":
    sys.exit(main())
