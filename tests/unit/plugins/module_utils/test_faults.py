"""The shell commands chaos sends through SSM, run by a real shell as AWS-RunShellScript would."""

import subprocess
import time

import pytest

from ansible_collections.selfheal.aws.plugins.module_utils import faults

INSTALL_DIR = "/opt/selfheal"


def run_script(commands, root, wait=True):
    """One script of the commands, as SSM runs them, with the sandbox's SELFHEAL_ROOT."""
    process = subprocess.Popen(
        ["sh", "-c", "\n".join(commands)], env={"PATH": "/usr/bin:/bin", "SELFHEAL_ROOT": str(root)}
    )
    if wait:
        assert process.wait(timeout=10) == 0
    return process


def test_fail_health_flags_the_app_under_the_instance_root_and_heal_removes_it(tmp_path):
    flag = tmp_path / "opt/selfheal/run/fail-health"
    run_script(faults.fail_health_commands(INSTALL_DIR), tmp_path)
    assert flag.is_file()
    run_script(faults.heal_health_commands(INSTALL_DIR), tmp_path)
    assert not flag.exists()


def test_fail_health_prints_when_the_instance_applied_it(tmp_path):
    before = time.time()
    script = subprocess.run(
        ["sh", "-c", "\n".join(faults.fail_health_commands(INSTALL_DIR))],
        env={"PATH": "/usr/bin:/bin", "SELFHEAL_ROOT": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    applied = faults.applied_at(script.stdout)
    assert before <= applied <= time.time()


@pytest.mark.parametrize("output", ["", "hello\n", f"{faults.APPLIED_AT_MARK} soon\n", None])
def test_no_applied_time_without_a_valid_mark(output):
    assert faults.applied_at(output) is None


def test_cpu_stress_stops_when_its_flag_is_removed(tmp_path):
    stress = run_script(faults.cpu_stress_commands(INSTALL_DIR, duration=300), tmp_path, wait=False)
    flag = tmp_path / "opt/selfheal/run/cpu-stress"
    deadline = time.monotonic() + 10
    while not flag.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert flag.exists()
    assert stress.poll() is None  # busy until told to stop
    run_script(faults.stop_stress_commands(INSTALL_DIR), tmp_path)
    assert stress.wait(timeout=10) == 0


def test_cpu_stress_ends_by_itself_after_its_duration_and_cleans_up(tmp_path):
    stress = run_script(faults.cpu_stress_commands(INSTALL_DIR, duration=1), tmp_path, wait=False)
    assert stress.wait(timeout=15) == 0
    assert not (tmp_path / "opt/selfheal/run/cpu-stress").exists()


def test_flag_paths_are_quoted_against_the_shell():
    commands = faults.fail_health_commands("/opt/self heal; rm -rf /")
    assert "'/opt/self heal; rm -rf /" in commands[0]


def test_crash_app_kills_the_process_its_pid_file_names(tmp_path):
    app = subprocess.Popen(["sleep", "60"])
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        run_dir = tmp_path / "opt/selfheal/run"
        run_dir.mkdir(parents=True)
        (run_dir / "web.pid").write_text(f"{app.pid}\n")
        run_script(faults.crash_app_commands(INSTALL_DIR), tmp_path)
        assert app.wait(timeout=10) == -9  # SIGKILL: no graceful shutdown
        assert bystander.poll() is None  # nothing else is touched
    finally:
        for process in (app, bystander):
            process.kill()
            process.wait()
