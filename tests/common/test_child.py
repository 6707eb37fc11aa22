"""The one child runner, with real processes: output, timeouts, group kills, drains, secrets."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
from pathlib import Path

import pytest

from maasflow.common import child
from tests.common.processes import alive, group_gone, wait_until

IGNORE_TERM = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(300)\n"
)


def script(tmp_path: Path, body: str, name: str = "prog.sh") -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


async def started(tmp_path: Path, body: str, limits: child.Limits) -> child.Child:
    return await child.start([script(tmp_path, body)], limits=limits)


async def test_output_of_both_streams_is_merged_by_default(tmp_path: Path) -> None:
    """Without Streams.SEPARATE, stdout and stderr land in one output, in order."""
    done = await child.run([script(tmp_path, "echo one\necho two >&2\necho three\n")])
    assert (done.exit_code, done.output, done.errors) == (0, "one\ntwo\nthree\n", "")


async def test_separate_streams_keep_stderr_apart(tmp_path: Path) -> None:
    """With Streams.SEPARATE, stdout is the answer and stderr is kept on its own."""
    argv = [script(tmp_path, "echo answer\necho noise >&2\n")]
    done = await child.run(argv, streams=child.Streams.SEPARATE)
    assert (done.output, done.errors) == ("answer\n", "noise\n")


async def test_the_handle_names_pid_group_and_start_before_any_wait(tmp_path: Path) -> None:
    """start() returns pid, pgid (its own group: a new session) and start time at once."""
    handle = await started(tmp_path, "exec sleep 300\n", child.Limits(timeout=30))
    try:
        assert handle.pgid == handle.pid == os.getpgid(handle.pid) == os.getsid(handle.pid)
        assert handle.started_at > 0 and alive(handle.pid)
    finally:
        handle.stop()
        done = await handle.wait()
    assert done.stopped and done.exit_code == -signal.SIGTERM


async def test_stdin_is_dev_null(tmp_path: Path) -> None:
    """A program reading stdin sees end of file at once, never the daemon's terminal."""
    done = await child.run(["cat"], limits=child.Limits(timeout=10))
    assert (done.exit_code, done.output) == (0, "")


async def test_background_child_holding_stdout_does_not_lose_the_answer(tmp_path: Path) -> None:
    """An exit 0 that leaves a child on stdout returns its output after the drain, group emptied."""
    pid_file = tmp_path / "bg.pid"
    body = f"sleep 300 &\necho $! > {pid_file}\necho answer\nexit 0\n"
    limits = child.Limits(timeout=30, drain=0.2)
    done = await asyncio.wait_for(child.run([script(tmp_path, body)], limits=limits), 10)
    assert (done.exit_code, done.timed_out, done.output) == (0, False, "answer\n")
    assert await wait_until(lambda: not alive(int(pid_file.read_text())))


async def test_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    """Past the timeout the program and its children get SIGTERM; the group is gone after."""
    pid_file = tmp_path / "pid"
    body = f"echo $$ > {pid_file}\nsleep 300 &\nwait\n"
    handle = await started(tmp_path, body, child.Limits(timeout=0.3))
    done = await handle.wait()
    assert done.timed_out and not done.stopped and done.exit_code == -signal.SIGTERM
    assert int(pid_file.read_text()) == handle.pgid
    assert await wait_until(lambda: group_gone(handle.pgid))
    with pytest.raises(child.TimedOut, match=r"'.*prog\.sh' timed out after 0\.3 s"):
        done.check()


async def test_a_child_ignoring_sigterm_gets_sigkill_after_the_grace(tmp_path: Path) -> None:
    """A program that ignores SIGTERM is SIGKILLed once the grace has passed."""
    limits = child.Limits(timeout=30, grace=0.3)
    handle = await child.start([sys.executable, "-c", IGNORE_TERM], limits=limits)
    assert await wait_until(lambda: handle.output() == "ready\n")
    loop = asyncio.get_running_loop()
    stopped_at = loop.time()
    handle.stop()
    done = await handle.wait()
    assert done.exit_code == -signal.SIGKILL and done.stopped
    assert loop.time() - stopped_at >= 0.3
    assert await wait_until(lambda: group_gone(handle.pgid))


async def test_cancelling_the_wait_kills_the_group(tmp_path: Path) -> None:
    """A cancelled waiter (shutdown) still leaves no process of the child's group behind."""
    body = "sleep 300 &\necho up\nwait\n"
    handle = await started(tmp_path, body, child.Limits(timeout=300, grace=0.3))
    waiting = asyncio.create_task(handle.wait())
    assert await wait_until(lambda: handle.output() == "up\n")  # the wait has begun too
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await wait_until(lambda: group_gone(handle.pgid))


async def test_output_tail_is_bounded(tmp_path: Path) -> None:
    """Only the last tail_bytes of each stream are kept, however much is written."""
    body = "head -c 200000 /dev/zero | tr '\\0' x\necho END\nhead -c 50000 /dev/zero >&2\n"
    limits = child.Limits(timeout=30, tail_bytes=1000)
    done = await child.run([script(tmp_path, body)], limits=limits, streams=child.Streams.SEPARATE)
    assert len(done.output) == 1000 and done.output.endswith("xxxEND\n")
    assert len(done.errors) == 1000


async def test_the_output_so_far_is_readable_while_running(tmp_path: Path) -> None:
    """A running child's output can be read before it ends (GET .../log of a running job)."""
    handle = await started(tmp_path, "echo early\nexec sleep 300\n", child.Limits(timeout=30))
    try:
        assert await wait_until(lambda: handle.output() == "early\n")
    finally:
        handle.stop()
        await handle.wait()


async def test_failure_error_carries_program_code_and_last_line(tmp_path: Path) -> None:
    """A non-zero exit raises ChildError with argv[0], the exit code and the output's tail."""
    prog = script(tmp_path, "echo first\necho 'disk full' >&2\nexit 3\n")
    with pytest.raises(child.ChildError) as caught:
        await child.run([prog])
    error = caught.value
    assert (error.argv0, error.exit_code, error.last_line) == (prog, 3, "disk full")
    assert str(error) == f"{prog!r} exited 3: disk full"
    assert "first" in error.tail


async def test_stderr_is_the_evidence_when_kept_apart(tmp_path: Path) -> None:
    """With separate streams an error quotes stderr, not the (half-written) answer."""
    prog = script(tmp_path, "echo '{\"half\":'\necho 'no BMC' >&2\nexit 2\n")
    with pytest.raises(child.ChildError, match=r"exited 2: no BMC$"):
        await child.run([prog], streams=child.Streams.SEPARATE)


async def test_death_by_signal_is_named(tmp_path: Path) -> None:
    """A program killed by a signal is reported with the signal's name, or its number."""
    with pytest.raises(child.ChildError, match=r"was killed by signal SIGKILL$"):
        await child.run([script(tmp_path, "kill -KILL $$\n")])
    assert child.exit_phrase(-40) == "was killed by signal 40"


@pytest.mark.parametrize(
    ("argv", "cause"),
    [(["/nonexistent/tool"], "No such file or directory"), (["echo", "a\x00b"], "null byte")],
)
async def test_a_program_that_cannot_start_is_a_start_error(argv: list[str], cause: str) -> None:
    """A missing program or an argument with a NUL byte raises StartError naming argv[0]."""
    with pytest.raises(child.StartError, match=cause) as caught:
        await child.run(argv)
    assert caught.value.argv0 == argv[0] and caught.value.exit_code is None


async def test_known_secrets_never_reach_a_child_even_when_handed_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner scrubs every environment, ours or the caller's, of maasflow's secrets."""
    monkeypatch.setenv("PROVISION_TOKEN", "tok-ours")
    handed = {"MAAS_API_KEY": "a:b:c", "AUTOMATION_PROVISION_TOKEN": "tok-given", "KEEP": "1"}
    ours = await child.run(["env"])
    given = await child.run(["env"], env=handed)
    assert "tok-ours" not in ours.output and "PROVISION_TOKEN" not in ours.output
    assert given.output == "KEEP=1\n"


async def test_a_gated_child_reads_one_byte_once_released_else_end_of_file() -> None:
    """A gated child's stdin gives one byte after release(); unreleased, end of file at wait()."""
    argv = [sys.executable, "-c", "import sys; print(repr(sys.stdin.buffer.read()))"]
    released = await child.start(argv, limits=child.Limits(timeout=30), gated=True)
    released.release()
    held = await child.start(argv, limits=child.Limits(timeout=30), gated=True)
    assert (await released.wait()).output == "b'1'\n"
    assert (await held.wait()).output == "b''\n"


async def test_a_sink_gets_stdout_as_it_comes_and_detach_lets_the_child_be(tmp_path: Path) -> None:
    """Each chunk of stdout reaches the sink; a detached child runs on, unsignalled."""
    chunks: list[bytes] = []
    body = "echo first\nexec sleep 300\n"
    handle = await child.start(
        [script(tmp_path, body)], limits=child.Limits(timeout=30), sink=chunks.append
    )
    try:
        assert await wait_until(lambda: b"".join(chunks) == b"first\n")
        handle.detach()
        await asyncio.sleep(0.2)
        assert alive(handle.pid)
    finally:
        child.signal_group(handle.pgid, signal.SIGKILL)
    assert await wait_until(lambda: group_gone(handle.pgid))
