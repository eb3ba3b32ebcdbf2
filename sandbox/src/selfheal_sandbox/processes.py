"""Every process the sandbox starts, and how to stop them all.

Instance processes (an app started by user data) run in their own session and
process group, so one signal reaches the whole tree. Each is recorded in
`<state>/processes.json` the moment it starts, so `down` can end them even
after the server itself crashed. Entries carry the process start time: a
recycled pid is never mistaken for ours.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from .state import atomic_write

log = logging.getLogger(__name__)

# AWS gives an instance's OS a moment to shut down before it is forced off;
# locally a few seconds are plenty for a small app.
DEFAULT_STOP_TIMEOUT = 5.0


@dataclass(frozen=True)
class ChildProcess:
    pid: int
    create_time: float
    # What it is and who it belongs to, e.g. role="instance", owner="i-0abc...".
    role: str
    owner: str

    def alive(self) -> psutil.Process | None:
        return process_if_same(self.pid, self.create_time)


def process_if_same(pid: int, create_time: float) -> psutil.Process | None:
    """The live process with this pid, only if it is the one started at create_time."""
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - create_time) > 0.01:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


class ProcessRegistry:
    """`processes.json`, shared by the server (writer) and `down` (reader/cleaner)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(f".{path.name}.lock")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[list[ChildProcess]]:
        with self._lock_path.open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                entries = self._read()
                before = list(entries)
                yield entries
                if entries != before:
                    atomic_write(self.path, json.dumps([asdict(e) for e in entries], indent=2))
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _read(self) -> list[ChildProcess]:
        try:
            return [ChildProcess(**e) for e in json.loads(self.path.read_text(encoding="utf-8"))]
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return []

    def entries(self) -> list[ChildProcess]:
        with self._locked() as entries:
            return list(entries)

    def add(self, child: ChildProcess) -> None:
        with self._locked() as entries:
            entries.append(child)

    def remove(self, pid: int) -> None:
        with self._locked() as entries:
            entries[:] = [e for e in entries if e.pid != pid]

    def spawn(self, argv: Sequence[str], role: str, owner: str, **popen: Any) -> subprocess.Popen:
        """Start a process in its own session (its pid is its process group) and
        record it before anything else can happen to it."""
        proc = subprocess.Popen(argv, start_new_session=True, **popen)
        try:
            create_time = psutil.Process(proc.pid).create_time()
        except psutil.NoSuchProcess:
            return proc
        self.add(ChildProcess(proc.pid, create_time, role, owner))
        return proc

    def stop_all(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> int:
        """End every registered process tree; returns how many trees were alive."""
        entries = self.entries()
        live = [p for p in (e.alive() for e in entries) if p is not None]
        stop_trees(live, timeout)
        with self._locked() as current:
            gone = {e.pid for e in entries}
            current[:] = [e for e in current if e.pid not in gone]
        return len(live)


def process_tree(root: psutil.Process) -> list[psutil.Process]:
    """root, its descendants, and every member of its process group (members that
    outlived their parent are re-parented to init and only reachable that way)."""
    procs: dict[int, psutil.Process] = {root.pid: root}
    with contextlib.suppress(psutil.Error):
        for child in root.children(recursive=True):
            procs[child.pid] = child
    with contextlib.suppress(OSError):
        pgid = os.getpgid(root.pid)
        if pgid == root.pid:  # only groups we created, never the caller's own
            for proc in psutil.process_iter():
                with contextlib.suppress(OSError, psutil.Error):
                    if proc.pid not in procs and os.getpgid(proc.pid) == pgid:
                        procs[proc.pid] = proc
    return list(procs.values())


def _signal_all(procs: Sequence[psutil.Process], sig: signal.Signals) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)


def is_gone(proc: psutil.Process) -> bool:
    # A zombie has finished; only its parent can reap it, and that parent may be
    # the caller's test harness or a dead server, so do not wait for the reaping.
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def wait_gone(procs: Sequence[psutil.Process], timeout: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    alive = list(procs)
    while alive:
        alive = [p for p in alive if not is_gone(p)]
        if not alive or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    return alive


def stop_trees(roots: Sequence[psutil.Process], timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
    """SIGTERM every process of every tree, SIGKILL what is left after timeout."""
    procs = [p for root in roots for p in process_tree(root)]
    if not procs:
        return
    _signal_all(procs, signal.SIGTERM)
    alive = wait_gone(procs, timeout)
    if alive:
        log.warning(
            "processes %s ignored SIGTERM for %.0f s; sending SIGKILL",
            [p.pid for p in alive],
            timeout,
        )
        _signal_all(alive, signal.SIGKILL)
        wait_gone(alive, timeout)


def group_members(groups: set[int]) -> dict[int, list[psutil.Process]]:
    """Live processes of each process group and their descendants: a child may
    leave the group (GNU timeout makes its own), a member may outlive its parent."""
    members: dict[int, dict[int, psutil.Process]] = {g: {} for g in groups}
    if not groups:
        return {}
    for proc in psutil.process_iter():
        with contextlib.suppress(OSError, psutil.Error):
            pgid = os.getpgid(proc.pid)
            if pgid in members and proc.status() != psutil.STATUS_ZOMBIE:
                members[pgid][proc.pid] = proc
    for found in members.values():
        for proc in list(found.values()):
            with contextlib.suppress(psutil.Error):
                for child in proc.children(recursive=True):
                    found.setdefault(child.pid, child)
    return {g: list(found.values()) for g, found in members.items()}
