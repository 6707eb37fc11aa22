"""ScriptProvisioner with real subprocesses: argv, env, exit codes, TTL and group kill."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import stat
from pathlib import Path

import pytest

from maasflow.common.errors import ConfigError, ProvisionError
from maasflow.daemon.provisioning import TAIL_BYTES, ScriptProvisioner, Target
from tests.common.processes import alive, wait_until

TARGET = Target("abc123", "node1", "node1.maas", "10.0.0.5", "52:54:00:aa:bb:cc", "z1", "p1")


def write_script(tmp_path: Path, body: str, name: str = "provision.sh") -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


async def test_success_returns_output_with_argv_and_env(tmp_path: Path) -> None:
    """Exit 0 returns the output; argv is id, hostname, ip and MAASFLOW_* vars describe it."""
    script = write_script(
        tmp_path,
        'echo "args=$1|$2|$3|$#"\n'
        'echo "env=$MAASFLOW_SYSTEM_ID|$MAASFLOW_HOSTNAME|$MAASFLOW_FQDN|$MAASFLOW_IP"\n'
        'echo "env2=$MAASFLOW_MAC|$MAASFLOW_ZONE|$MAASFLOW_POOL"\n'
        'echo "to stderr" >&2\n',
    )
    output = await ScriptProvisioner(script, ttl=30).run(TARGET)
    assert "args=abc123|node1|10.0.0.5|3" in output
    assert "env=abc123|node1|node1.maas|10.0.0.5" in output
    assert "env2=52:54:00:aa:bb:cc|z1|p1" in output
    assert "to stderr" in output


async def test_failure_carries_exit_code_and_tail(tmp_path: Path) -> None:
    """A non-zero exit raises ProvisionError with the exit code and the output's tail."""
    script = write_script(tmp_path, "echo step one\necho 'ansible: unreachable' >&2\nexit 3\n")
    with pytest.raises(ProvisionError) as caught:
        await ScriptProvisioner(script, ttl=30).run(TARGET)
    error = caught.value
    assert error.exit_code == 3
    assert "exited with code 3: ansible: unreachable" in str(error)
    assert "step one" in error.output_tail and "unreachable" in error.output_tail


async def test_script_killed_by_a_signal_says_so(tmp_path: Path) -> None:
    """A script that dies from a signal reports the signal's name."""
    script = write_script(tmp_path, "kill -KILL $$\n")
    with pytest.raises(ProvisionError, match="killed by signal SIGKILL") as caught:
        await ScriptProvisioner(script, ttl=30).run(TARGET)
    assert caught.value.exit_code == -9


async def test_unnamed_signal_is_reported_by_number(tmp_path: Path) -> None:
    """A script killed by a real-time signal reports the signal number."""
    script = write_script(tmp_path, "kill -s 40 $$\n")
    with pytest.raises(ProvisionError, match="killed by signal 40") as caught:
        await ScriptProvisioner(script, ttl=30).run(TARGET)
    assert caught.value.exit_code == -40


async def test_output_tail_is_bounded(tmp_path: Path) -> None:
    """Only the last TAIL_BYTES of a chatty script's output are kept."""
    script = write_script(
        tmp_path, "i=0\nwhile [ $i -lt 3000 ]; do echo line-$i; i=$((i+1)); done\n"
    )
    output = await ScriptProvisioner(script, ttl=30).run(TARGET)
    assert len(output) <= TAIL_BYTES
    assert output.endswith("line-2999\n") and "line-0\n" not in output


@pytest.mark.parametrize("ignore_term", [False, True])
async def test_hang_is_killed_at_ttl_with_its_whole_group(
    tmp_path: Path, ignore_term: bool
) -> None:
    """Past the TTL the whole process group is killed, children included, even if they trap TERM."""
    pid_file = tmp_path / "child.pid"
    trap = "trap '' TERM\n" if ignore_term else ""
    script = write_script(tmp_path, f"{trap}sleep 300 &\necho $! > {pid_file}\nwait\n")
    runner = ScriptProvisioner(script, ttl=0.5, grace=0.3)
    with pytest.raises(ProvisionError, match=r"timed out after 0\.5s"):
        await runner.run(TARGET)
    child = int(pid_file.read_text())
    assert await wait_until(lambda: not alive(child))


async def test_a_ttl_of_zero_lets_the_script_finish(tmp_path: Path) -> None:
    """PROVISION_TTL=0 is maas-flow's "no limit": the script is not killed at once, it finishes."""
    script = write_script(tmp_path, "sleep 0.2\necho finished\n")
    assert (await ScriptProvisioner(script, ttl=0).run(TARGET)).strip() == "finished"


async def test_cancellation_kills_the_group(tmp_path: Path) -> None:
    """Cancelling run() (daemon shutdown) kills the script and its children."""
    pid_file = tmp_path / "child.pid"
    script = write_script(
        tmp_path, f"sleep 300 &\necho $! > {pid_file}.tmp\nmv {pid_file}.tmp {pid_file}\nwait\n"
    )
    task = asyncio.create_task(ScriptProvisioner(script, ttl=300, grace=0.3).run(TARGET))
    assert await wait_until(pid_file.exists)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    child = int(pid_file.read_text())
    assert await wait_until(lambda: not alive(child))


async def test_background_child_holding_output_does_not_block(tmp_path: Path) -> None:
    """A script that exits 0 leaving a child on its stdout still returns promptly."""
    pid_file = tmp_path / "bg.pid"
    script = write_script(tmp_path, f"sleep 120 &\necho $! > {pid_file}\necho done\nexit 0\n")
    try:
        output = await asyncio.wait_for(ScriptProvisioner(script, ttl=300).run(TARGET), 20)
    finally:
        with contextlib.suppress(ProcessLookupError):  # the runner has killed it already
            os.kill(int(pid_file.read_text()), 9)
    assert "done" in output


async def test_background_children_are_killed_once_the_script_exits(tmp_path: Path) -> None:
    """What a script leaves running in its process group does not outlive the run."""
    pid_file = tmp_path / "bg.pid"
    script = write_script(tmp_path, f"sleep 300 >/dev/null 2>&1 &\necho $! > {pid_file}\n")
    await ScriptProvisioner(script, ttl=30).run(TARGET)
    assert await wait_until(lambda: not alive(int(pid_file.read_text())))


@pytest.mark.parametrize("hostname", ["a;rm -rf x", "$(touch pwned)", "`touch pwned`", "-rf *"])
async def test_hostile_hostname_is_passed_literally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hostname: str
) -> None:
    """A hostile hostname reaches the script as one literal argument; no shell ever runs it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x").mkdir()
    out = tmp_path / "argv.txt"
    script = write_script(tmp_path, f'printf "%s\\n" "$#" "$2" "$MAASFLOW_HOSTNAME" > {out}\n')
    target = Target("abc", hostname, "", "10.0.0.5", "", "", "")
    await ScriptProvisioner(script, ttl=30).run(target)
    assert out.read_text() == f"3\n{hostname}\n{hostname}\n"
    assert not (tmp_path / "pwned").exists()
    assert (tmp_path / "x").is_dir()


async def test_nul_byte_in_an_argument_is_a_provision_error(tmp_path: Path) -> None:
    """A NUL byte in the hostname is refused as a ProvisionError, not a crash."""
    script = write_script(tmp_path, "exit 0\n")
    target = Target("abc", "bad\x00name", "", "10.0.0.5", "", "", "")
    with pytest.raises(ProvisionError, match="cannot start"):
        await ScriptProvisioner(script, ttl=30).run(target)


async def test_maas_api_key_is_not_passed_to_the_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The MAAS API key variables are removed from the script's environment."""
    monkeypatch.setenv("MAAS_API_KEY", "aaa:bbb:ccc")
    monkeypatch.setenv("AUTOMATION_MAAS_API_KEY", "ddd:eee:fff")
    monkeypatch.setenv("KEEP_ME", "yes")
    script = write_script(tmp_path, "env\n")
    output = await ScriptProvisioner(script, ttl=30).run(TARGET)
    assert "bbb" not in output and "eee" not in output
    assert "KEEP_ME=yes" in output


@pytest.mark.parametrize(
    "name", ["PROVISION_TOKEN", "AUTOMATION_PROVISION_TOKEN", "MAASFLOW_PROVISION_TOKEN"]
)
async def test_provisioning_token_is_not_passed_to_the_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """The Bearer token for an HTTP provisioner is the daemon's; a script never sees it."""
    monkeypatch.setenv(name, "t0ken-value")
    out = tmp_path / "env.txt"
    await ScriptProvisioner(write_script(tmp_path, f"env > {out}\n"), ttl=30).run(TARGET)
    seen = out.read_text()
    assert "t0ken-value" not in seen and f"{name}=" not in seen
    assert "MAASFLOW_SYSTEM_ID=abc123" in seen


async def test_missing_or_non_executable_script(tmp_path: Path) -> None:
    """A missing or non-executable script: ProvisionError from run(), ConfigError from check()."""
    missing = ScriptProvisioner(str(tmp_path / "nope.sh"), ttl=30)
    plain = tmp_path / "plain.sh"
    plain.write_text("#!/bin/sh\nexit 0\n")
    not_exec = ScriptProvisioner(str(plain), ttl=30)
    with pytest.raises(ProvisionError, match="does not exist"):
        await missing.run(TARGET)
    with pytest.raises(ProvisionError, match="not executable"):
        await not_exec.run(TARGET)
    with pytest.raises(ConfigError, match=r"PROVISION_URL: .*nope\.sh does not exist"):
        missing.check()
    with pytest.raises(ConfigError, match="not executable"):
        not_exec.check()


async def test_unrunnable_script_is_a_provision_error(tmp_path: Path) -> None:
    """An executable file the kernel cannot run (bad interpreter) is a ProvisionError."""
    script = tmp_path / "bad.sh"
    script.write_text("#!/nonexistent/interpreter\n")
    script.chmod(0o755)
    with pytest.raises(ProvisionError, match="cannot start"):
        await ScriptProvisioner(str(script), ttl=30).run(TARGET)


async def test_the_deploy_id_reaches_the_script(tmp_path: Path) -> None:
    """MAASFLOW_DEPLOY_ID names the deploy, so a script can make its own work idempotent."""
    script = write_script(tmp_path, 'echo "deploy=$MAASFLOW_DEPLOY_ID"\n')
    output = await ScriptProvisioner(script, ttl=30).run(TARGET, deploy_id="0123abcd")
    assert output == "deploy=0123abcd\n"


async def test_a_rules_role_reaches_the_script_as_maasflow_role(tmp_path: Path) -> None:
    """A targets rule's provisioning role is MAASFLOW_ROLE in the script's environment."""
    script = write_script(tmp_path, 'echo "role=${MAASFLOW_ROLE-unset}"\n')
    with_role = await ScriptProvisioner(script, ttl=30).run(dataclasses.replace(TARGET, role="db"))
    without = await ScriptProvisioner(script, ttl=30).run(TARGET)
    assert "role=db" in with_role
    assert "role=unset" in without
