"""SSM Run Command: AWS-RunShellScript runs its commands on the instance.

The sandbox's SSM agent (adapter/ssm.py routes SendCommand here) writes the
commands to `<state>/instances/<id>/ssm/<command-id>/_script.sh`, as the agent
does, and runs it with bash in the instance's context: cwd its root (or the
workingDirectory parameter, below the root), the instance's environment (with
SELFHEAL_BIND_ADDRESS), as a process of the instance (its CPU counts in
CPUUtilization; stop/terminate ends it; `down` kills it).

AWS rules followed: only a running, booted instance (a managed node whose agent
is online) receives commands, else SendCommand fails with InvalidInstanceId (AWS
also accepts stopped nodes and delays delivery; the sandbox is stricter). The
document's executionTimeout (default 3600 AWS s) bounds the run: the agent kills
the process group and reports Status TimedOut, StatusDetails ExecutionTimedOut,
ResponseCode 137. A non-zero exit is Failed. GetCommandInvocation returns the
first 24,000 characters of stdout and the first 8,000 of stderr.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import threading
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from .adapter.ssm import SentCommand
from .processes import group_members

if TYPE_CHECKING:
    from .ec2_runtime import Ec2Runtime
    from .server import Sandbox

log = logging.getLogger(__name__)

STDOUT_LIMIT = 24000
STDERR_LIMIT = 8000
# The agent's exit code for a command it stopped (128 + SIGKILL).
STOPPED_EXIT_CODE = 137


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _head(path: Path, limit: int) -> str:
    """The first `limit` characters of a file (read only as much as needed)."""
    try:
        with path.open("rb") as fh:
            return fh.read(limit * 4).decode("utf-8", errors="replace")[:limit]
    except FileNotFoundError:
        return ""


class SsmRunCommand:
    """The agent side of Run Command; implements adapter.ssm.SsmAgent."""

    def __init__(self, sandbox: Sandbox, runtime: Ec2Runtime) -> None:
        self.sandbox = sandbox
        self.runtime = runtime
        self._mu = threading.Lock()
        self._running = 0
        self._finished = 0

    # -- SsmAgent (inside the API request, under the sandbox lock)

    def managed_instances(self) -> set[str]:
        return self.runtime.booted_instance_ids()

    def now(self) -> datetime:
        return self.sandbox.clock.utcnow()

    def command_sent(self, command: SentCommand) -> None:
        for instance_id in command.instance_ids:
            threading.Thread(
                target=self._invoke,
                args=(command, instance_id),
                name=f"ssm-{command.command_id[:8]}-{instance_id}",
                daemon=True,
            ).start()

    def status(self) -> dict[str, Any]:
        with self._mu:
            return {"invocations_running": self._running, "invocations_finished": self._finished}

    # -- one invocation, in its own thread; the sandbox lock only to record results

    def _update(self, command: SentCommand, instance_id: str, **fields: Any) -> None:
        with self.sandbox.lock:
            self.sandbox.adapter.ssm_update_invocation(command.command_id, instance_id, **fields)

    def _invoke(self, command: SentCommand, instance_id: str) -> None:
        with self._mu:
            self._running += 1
        try:
            self._run(command, instance_id)
        except Exception:
            log.exception("Run Command %s on %s failed", command.command_id, instance_id)
            self._update(command, instance_id, Status="Failed", StatusDetails="Failed")
        finally:
            with self._mu:
                self._running -= 1
                self._finished += 1

    def _run(self, command: SentCommand, instance_id: str) -> None:
        context = self.runtime.command_context(instance_id)
        if context is None:
            # Stopped or terminated between SendCommand and delivery.
            self._update(command, instance_id, Status="Failed", StatusDetails="Undeliverable")
            return
        root, env = context
        workdir = root / command.working_directory.lstrip("/")
        folder = self.sandbox.config.state.instance_dir(instance_id) / "ssm" / command.command_id
        folder.mkdir(parents=True, exist_ok=True)
        script = folder / "_script.sh"
        script.write_text("\n".join(command.commands) + "\n", encoding="utf-8")
        stdout, stderr = folder / "stdout", folder / "stderr"
        if not workdir.is_dir():
            stderr.write_text(
                f"Failed to run commands: workingDirectory {command.working_directory} "
                "does not exist\n"
            )
            self._finish(
                command,
                instance_id,
                code=1,
                started=None,
                started_aws=None,
                stdout=stdout,
                stderr=stderr,
                timed_out=False,
            )
            return
        started = self.sandbox.clock.utcnow()
        started_aws = self.sandbox.clock.now()
        with stdout.open("wb") as out, stderr.open("wb") as err:
            proc = self.runtime.spawn_command(
                instance_id,
                ["/bin/bash", str(script)],
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        if proc is None:
            self._update(command, instance_id, Status="Failed", StatusDetails="Undeliverable")
            return
        self._update(
            command,
            instance_id,
            Status="InProgress",
            StatusDetails="InProgress",
            ExecutionStartDateTime=_iso(started),
            _started=started,
        )
        timeout_wall = self.sandbox.clock.to_wall(command.execution_timeout_aws_s)
        timed_out = False
        try:
            code = proc.wait(timeout=timeout_wall)
        except subprocess.TimeoutExpired:
            timed_out = True
            # The agent kills the script and everything it started.
            for member in group_members({proc.pid}).get(proc.pid, []):
                with contextlib.suppress(psutil.Error):
                    member.send_signal(signal.SIGKILL)
            proc.wait()
            code = STOPPED_EXIT_CODE
        finally:
            self.runtime.forget_command(instance_id, proc.pid)
        if code < 0:  # ended by a signal (e.g. the instance stopped): as a shell reports it
            code = 128 - code
        log.info(
            "Run Command %s on %s: exit %d after %.1f AWS s%s",
            command.command_id,
            instance_id,
            code,
            self.sandbox.clock.now() - started_aws,
            " (execution timeout)" if timed_out else "",
        )
        self._finish(
            command,
            instance_id,
            code=code,
            started=started,
            started_aws=started_aws,
            stdout=stdout,
            stderr=stderr,
            timed_out=timed_out,
        )

    def _finish(
        self,
        command: SentCommand,
        instance_id: str,
        *,
        code: int,
        started: datetime | None,
        started_aws: float | None,
        stdout: Path,
        stderr: Path,
        timed_out: bool,
    ) -> None:
        clock = self.sandbox.clock
        ended = clock.utcnow()
        elapsed = clock.now() - started_aws if started_aws is not None else 0.0
        if timed_out:
            status, details = "TimedOut", "ExecutionTimedOut"
        elif code == 0:
            status, details = "Success", "Success"
        else:
            status, details = "Failed", "Failed"
        self._update(
            command,
            instance_id,
            Status=status,
            StatusDetails=details,
            ResponseCode=code,
            ExecutionStartDateTime=_iso(started or ended),
            ExecutionEndDateTime=_iso(ended),
            ExecutionElapsedTime=f"PT{elapsed:.3f}S",
            StandardOutputContent=_head(stdout, STDOUT_LIMIT),
            StandardErrorContent=_head(stderr, STDERR_LIMIT),
            _started=started or ended,
            _ended=ended,
        )
