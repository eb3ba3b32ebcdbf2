"""Run a module's main() in-process against moto's in-memory AWS (no network, no sandbox)."""

import json

import boto3
import pytest
from ansible.module_utils import basic
from moto import mock_aws

REGION = "us-east-1"
STACK = "selfheal"


@pytest.fixture
def run_module(monkeypatch, capsys):
    """run_module(main, args) -> the module's result dict (result["failed"] set when it failed)."""

    def run(main, args):
        args = {"region": REGION, "access_key": "testing", "secret_key": "testing", **args}
        monkeypatch.setattr(basic, "_ANSIBLE_ARGS", json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode())
        monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy", raising=False)
        with pytest.raises(SystemExit):
            main()
        return json.loads(capsys.readouterr().out)

    return run


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield {name: boto3.client(name, region_name=REGION) for name in ("ec2", "autoscaling", "elbv2")}


@pytest.fixture(scope="session", autouse=True)
def _shared_botocore_models():
    """Every module run makes new boto3 sessions, each parsing the service models again
    (about a second per test); the models never change during the tests, so parse them once."""
    from botocore import loaders

    original = loaders.Loader.load_service_model
    cache = {}

    def load_service_model(self, service_name, type_name, api_version=None):
        key = (service_name, type_name, api_version)
        if key not in cache:
            cache[key] = original(self, service_name, type_name, api_version)
        return cache[key]

    loaders.Loader.load_service_model = load_service_model
    yield
    loaders.Loader.load_service_model = original


@pytest.fixture
def web_app():
    """A stand-in for the ALB on 127.0.0.1: answers like the web app; web_app.status sets the code."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"instance_id": "i-answering", "availability_zone": "us-east-1a"}).encode()
            self.send_response(server.status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.status = 200
    server.url = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
