"""selfheal.aws demo web application: stdlib only, one file.

GET /        -> JSON with the instance id, AZ and release that answered
GET <health> -> 200 "ok", or 503 while the file <install_dir>/run/fail-health exists
                (lets a game day fail the health check while the app keeps running)

Its process id is in <install_dir>/run/web.pid, for a game day that crashes it.

Instance identity comes from SELFHEAL_INSTANCE_ID / SELFHEAL_AZ when set (the sandbox
sets them), else from the EC2 instance metadata service with an IMDSv2 token.
"""

import json
import os
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

INSTALL_DIR = Path(__file__).resolve().parent.parent
CONFIG = json.loads((INSTALL_DIR / "etc" / "config.json").read_text())
IMDS = "http://169.254.169.254/latest"


def imds(path: str) -> str:
    """Read one instance metadata value with an IMDSv2 session token."""
    try:
        token_request = urllib.request.Request(
            f"{IMDS}/api/token", method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}
        )
        token = urllib.request.urlopen(token_request, timeout=1).read().decode()
        request = urllib.request.Request(f"{IMDS}/meta-data/{path}", headers={"X-aws-ec2-metadata-token": token})
        return urllib.request.urlopen(request, timeout=1).read().decode()
    except OSError:
        return "unknown"


IDENTITY = {
    "instance_id": os.environ.get("SELFHEAL_INSTANCE_ID") or imds("instance-id"),
    "availability_zone": os.environ.get("SELFHEAL_AZ") or imds("placement/availability-zone"),
    "version": CONFIG["version"],
}
BODY = (json.dumps(IDENTITY) + "\n").encode()
FAIL_HEALTH_FLAG = INSTALL_DIR / "run" / "fail-health"
PID_FILE = INSTALL_DIR / "run" / "web.pid"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the ALB uses towards targets
    disable_nagle_algorithm = True  # else headers and body leave 40 ms apart (delayed ACK)

    def do_GET(self) -> None:
        if self.path.split("?")[0] == CONFIG["health_path"]:
            failing = FAIL_HEALTH_FLAG.exists()
            self.reply(503 if failing else 200, b"failing\n" if failing else b"ok\n", "text/plain")
        else:
            self.reply(200, BODY, "application/json")

    def reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # one line per request would cost more than the request


def main() -> int:
    address = os.environ.get("SELFHEAL_BIND_ADDRESS", "0.0.0.0")
    port = int(os.environ.get("SELFHEAL_PORT", CONFIG["port"]))
    server = ThreadingHTTPServer((address, port), Handler)
    server.daemon_threads = True
    PID_FILE.parent.mkdir(parents=True, exist_ok=True)
    PID_FILE.write_text(f"{os.getpid()}\n")
    print(f"selfheal-web {CONFIG['version']} on {address}:{port} as {IDENTITY['instance_id']}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
