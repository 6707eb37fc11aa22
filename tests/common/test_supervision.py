"""Supervised runs with real processes: gated starts, results that outlive a SIGKILLed parent,
adoption after a restart, reused pids, orphans, and a full disk."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from maasflow.common import child, supervision
from maasflow.common.supervision import Interrupted, RunHandle
from tests.common.full_disk import fill, small_filesystem
from tests.common.processes import alive, group_gone, wait_until

LIMITS = child.Limits(timeout=60, grace=0.3, drain=0.2)

# A parent that starts one supervised run, prints its handle, releases it unless told not to,
# then waits to be killed: the daemon or serve dying mid-run.
PARENT = """
import asyncio, json, sys
from dataclasses import asdict
from pathlib import Path
from maasflow.common import child, supervision

async def main():
    result, release, argv = sys.argv[1], sys.argv[2] == "release", sys.argv[3:]
    limits = child.Limits(timeout=60, grace=0.3, drain=0.2)
    run = await supervision.start(argv, result_file=Path(result), limits=limits)
    print(json.dumps(asdict(run.handle)), flush=True)
    if release:
        run.release()
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def gated_program(tmp_path: Path, body: str = "echo done\n") -> list[str]:
    """A program recording each start in `starts`, then waiting for the file `go`."""
    path = tmp_path / "program.sh"
    path.write_text(
        "#!/bin/sh\n"
        f"echo $$ >> {tmp_path}/starts\n"
        f"while [ ! -e {tmp_path}/go ]; do sleep 0.02; done\n" + body
    )
    path.chmod(0o755)
    return [str(path)]


def starts(tmp_path: Path) -> list[int]:
    path = tmp_path / "starts"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


@pytest.fixture
def parents() -> Iterator[list[subprocess.Popen[str]]]:
    """Parent processes a test started; killed, and their runs' groups too, afterwards."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def start_parent(
    parents: list[subprocess.Popen[str]], result: Path, argv: list[str], *, release: bool = True
) -> tuple[subprocess.Popen[str], RunHandle]:
    """Run PARENT in a subprocess; it and the handle of the run it started."""
    mode = "release" if release else "hold"
    proc = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(result), mode, *argv],
        stdout=subprocess.PIPE,
        text=True,
    )
    parents.append(proc)
    assert proc.stdout is not None
    return proc, RunHandle(**json.loads(proc.stdout.readline()))


async def test_a_gated_run_starts_nothing_until_released(tmp_path: Path) -> None:
    """Before release() the program has not started; after it, it runs once, result and all."""
    run = await supervision.start(
        gated_program(tmp_path), result_file=tmp_path / "runs" / "r.json", limits=LIMITS
    )
    await asyncio.sleep(0.3)  # time enough to start, were it not gated
    assert starts(tmp_path) == [] and run.handle.alive()
    run.release()
    assert await wait_until(lambda: len(starts(tmp_path)) == 1)
    (tmp_path / "go").touch()
    done = await run.wait()
    await run.close()
    assert (done.exit_code, done.output, len(starts(tmp_path))) == (0, "done\n", 1)
    assert not Path(run.handle.result_file).exists()


async def test_a_parent_killed_before_release_never_starts_the_program(
    tmp_path: Path, parents: list[subprocess.Popen[str]]
) -> None:
    """A parent SIGKILLed before it recorded and released the run leaves nothing running."""
    proc, handle = start_parent(
        parents, tmp_path / "r.json", gated_program(tmp_path), release=False
    )
    assert handle.alive()
    proc.kill()
    assert await wait_until(lambda: not handle.alive())
    (tmp_path / "go").touch()
    await asyncio.sleep(0.2)
    assert starts(tmp_path) == []
    with pytest.raises(Interrupted, match="without a result"):
        await supervision.adopt(handle)


async def test_a_result_outlives_the_sigkilled_parent_and_is_adopted(
    tmp_path: Path, parents: list[subprocess.Popen[str]]
) -> None:
    """The parent dies mid-run; the program runs on, once; adopt() waits and takes its result."""
    argv = gated_program(tmp_path, "echo finished late\nexit 4\n")
    proc, handle = start_parent(parents, tmp_path / "r.json", argv)
    assert await wait_until(lambda: len(starts(tmp_path)) == 1)
    proc.kill()
    proc.wait()
    adopting = asyncio.create_task(supervision.adopt(handle, poll=0.02))
    await asyncio.sleep(0.2)
    assert not adopting.done() and alive(starts(tmp_path)[0])  # still running: waited for
    (tmp_path / "go").touch()
    done = await asyncio.wait_for(adopting, 20)
    assert (done.exit_code, done.output) == (4, "finished late\n")
    assert len(starts(tmp_path)) == 1


async def test_a_reused_pid_is_not_taken_for_the_run(tmp_path: Path) -> None:
    """A live process with the recorded pid but another start time is not the run."""
    ours = supervision.start_ticks(os.getpid())
    assert ours is not None
    assert RunHandle(os.getpid(), os.getpid(), ours, "").alive()
    impostor = RunHandle(os.getpid(), os.getpid(), ours + 1, str(tmp_path / "none.json"))
    assert not impostor.alive() and not impostor.terminate()
    with pytest.raises(Interrupted):
        await supervision.adopt(impostor)


async def test_a_killed_supervisor_leaves_no_orphan_and_no_result(
    tmp_path: Path, parents: list[subprocess.Popen[str]]
) -> None:
    """With its supervisor SIGKILLed alone, adopting kills the program's group: no overlap."""
    proc, handle = start_parent(parents, tmp_path / "r.json", gated_program(tmp_path))
    assert await wait_until(lambda: len(starts(tmp_path)) == 1)
    program = starts(tmp_path)[0]
    assert await wait_until(lambda: (tmp_path / "r.json").exists())  # the program's pid noted
    proc.kill()
    os.kill(handle.pid, signal.SIGKILL)
    assert await wait_until(lambda: not handle.alive())
    assert alive(program)
    with pytest.raises(Interrupted, match="process group was killed"):
        await supervision.adopt(handle)
    assert await wait_until(lambda: group_gone(program))


async def test_stop_stops_the_program_and_the_result_says_so(tmp_path: Path) -> None:
    """stop() ends the program's group through the supervisor; the result says stopped."""
    run = await supervision.start(
        gated_program(tmp_path), result_file=tmp_path / "r.json", limits=LIMITS
    )
    run.release()
    assert await wait_until(lambda: len(starts(tmp_path)) == 1)
    run.stop()
    done = await run.wait()
    await run.close()
    assert done.stopped and done.exit_code == -signal.SIGTERM
    assert await wait_until(lambda: group_gone(starts(tmp_path)[0]))


async def test_cancelling_the_wait_stops_the_run(tmp_path: Path) -> None:
    """A cancelled waiter (shutdown) stops the program and leaves its result for a restart."""
    run = await supervision.start(
        gated_program(tmp_path), result_file=tmp_path / "r.json", limits=LIMITS
    )
    run.release()
    assert await wait_until(lambda: len(starts(tmp_path)) == 1)
    waiting = asyncio.create_task(run.wait())
    await asyncio.sleep(0.1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await wait_until(lambda: group_gone(starts(tmp_path)[0]))
    assert (await supervision.adopt(run.handle)).stopped


async def test_a_program_that_cannot_start_is_a_start_error(tmp_path: Path) -> None:
    """A missing program, or a NUL byte in its argv, is a StartError naming the program."""
    for argv in (["/nonexistent/tool"], ["echo", "a\x00b"]):
        run_file = tmp_path / f"r{len(argv)}.json"
        with pytest.raises(child.StartError) as caught:
            run = await supervision.start(argv, result_file=run_file, limits=LIMITS)
            run.release()
            try:
                await run.wait()
            finally:
                await run.close()
        assert caught.value.argv0 == argv[0]


async def test_the_output_is_live_and_only_its_tail_is_kept(tmp_path: Path) -> None:
    """The program's output reaches the parent as it comes; the result keeps the last bytes."""
    limits = child.Limits(timeout=60, grace=0.3, drain=0.2, tail_bytes=1000)
    argv = gated_program(tmp_path, "head -c 5000 /dev/zero | tr '\\0' x\necho END\n")
    Path(argv[0]).write_text(
        Path(argv[0]).read_text().replace("#!/bin/sh\n", "#!/bin/sh\necho early\n")
    )
    run = await supervision.start(argv, result_file=tmp_path / "r.json", limits=limits)
    run.release()
    assert await wait_until(lambda: run.output() == "early\n")
    (tmp_path / "go").touch()
    done = await run.wait()
    await run.close()
    assert len(done.output) == 1000 and done.output.endswith("xxEND\n")


async def test_a_full_disk_holds_the_result_until_it_can_be_saved(
    tmp_path: Path, parents: list[subprocess.Popen[str]]
) -> None:
    """The program ends on a full disk: the parent gets the result, the supervisor keeps it
    until space returns, then saves it; a restart adopts it."""
    with small_filesystem(tmp_path / "state") as state:
        run_file = state / "runs" / "r.json"
        run = await supervision.start(
            gated_program(tmp_path, "echo ok\n"), result_file=run_file, limits=LIMITS
        )
        run.release()
        try:
            assert await wait_until(lambda: len(starts(tmp_path)) == 1)
            filler = fill(state)
            run_file.unlink(missing_ok=True)  # the "running" note; now nothing fits its place
            filler_two = fill(state)
            (tmp_path / "go").touch()
            done = await asyncio.wait_for(run.wait(), 20)
            assert (done.exit_code, done.output) == (0, "ok\n")
            await asyncio.sleep(0.3)
            assert run.handle.alive() and not run_file.exists()  # holding the result
            run.detach()  # the parent could not store it either, and dies
            filler.unlink()
            filler_two.unlink()
            adopted = await asyncio.wait_for(supervision.adopt(run.handle, poll=0.02), 30)
            assert (adopted.exit_code, adopted.output) == (0, "ok\n")
        finally:  # a failed assertion must not leave the supervisor retrying for ever
            child.signal_group(run.handle.pgid, signal.SIGKILL)
