"""Streaming CLI commands and a gateway that is not there (issue 15): never reached, they fail at once with
one line naming the address and exit 125; reached and then lost, they ride out the restart.

Before: logs -f, attach and run waited out the 90 s retry budget against a gateway nothing listened for,
and pods/clusters list --watch gave up after two tries even when the gateway they were watching restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from gateway.sim.cluster import SimWorld
from tests.conftest import BIN, ROOT, Served, clean_env, podgate_serve
from tests.e2e.conftest import LOCAL

GIVE_UP_WITHIN = 30.0  # a third of the 90 s budget a reached gateway gets; the CLI gives up after about 5 s
OUTAGE = 6.0  # with the restart, the streams go well over 5 s without an answer: past a first contact's limit
TICKS = 80  # 0.25 s apart: the pod outlives the outage and the restart
CODE = f"import time\nfor i in range({TICKS}):\n    print(f'tick {{i}}', flush=True)\n    time.sleep(0.25)"
STREAMS = (
    ("logs", "-f", "some-request"),
    ("attach", "some-request"),
    ("run", "--image", "python:3.12", "--", "python", "-c", "print(1)"),
    ("pods", "list", "--watch"),
    ("clusters", "list", "--watch"),
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _not_tls() -> Iterator[str]:
    """A listener that answers a TLS handshake with plain bytes and hangs up."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                connection, _ = server.accept()
                with connection:
                    connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        server.close()


def _with_gateway(words: tuple[str, ...], flags: list[str]) -> list[str]:
    """The command with the gateway flags before any `--` (after it, they would be the pod's arguments)."""
    cut = words.index("--") if "--" in words else len(words)
    return [*words[:cut], *flags, *words[cut:]]


def test_a_gateway_never_reached_fails_each_stream_at_once_naming_it() -> None:
    refused = f"127.0.0.1:{_free_port()}"
    with _not_tls() as plain:
        cases = [(words, refused, []) for words in STREAMS]
        cases += [(STREAMS[0], "nowhere.invalid:50051", []), (STREAMS[1], plain, ["--tls"])]
        started = time.monotonic()
        procs = [
            subprocess.Popen([str(BIN / "podgate"), *_with_gateway(words, ["--gateway", address, *extra])],
                             cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for words, address, extra in cases
        ]  # fmt: skip
        done = [p.communicate(timeout=120) for p in procs]
        elapsed = time.monotonic() - started
    for (words, address, _), proc, (_, err) in zip(cases, procs, done, strict=True):
        lines = err.strip().splitlines()
        assert proc.returncode == 125, (words, err)
        assert lines[-1].startswith(f"podgate {' '.join(words[:2]) if words[0] in ('pods', 'clusters') else words[0]}: "
                                    f"cannot reach the gateway at {address} ("), (words, err)  # fmt: skip
        assert [line for line in lines if not line.startswith("request cli-")] == lines[-1:], (words, err)
    assert elapsed < GIVE_UP_WITHIN, f"gave up only after {elapsed:.0f} s"
    assert "TLS handshake" in done[-1][1]


@dataclass
class Command:
    """A CLI process whose stdout is collected line by line while it runs."""

    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, *args: str) -> Command:
        process = await asyncio.create_subprocess_exec(
            str(BIN / "podgate"), *args, cwd=ROOT, env=clean_env(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        command = cls(process)
        command.reader = asyncio.create_task(command._read())
        return command

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.lines.append(line.decode().rstrip("\n"))

    async def until(self, text: str, seconds: float = 60) -> None:
        async with asyncio.timeout(seconds):
            while not any(text in line for line in self.lines):
                assert self.process.returncode is None, (text, self.lines, await self.stderr())
                await asyncio.sleep(0.1)

    async def finish(self, seconds: float = 120) -> int:
        async with asyncio.timeout(seconds):
            code = await self.process.wait()
            assert self.reader is not None
            await self.reader
        return code

    async def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return await self.finish(30)

    async def stderr(self) -> str:
        assert self.process.stderr is not None
        return (await self.process.stderr.read()).decode() if self.process.returncode is not None else ""


async def _serve(state_dir: Path, listen: str) -> tuple[AbstractContextManager[Served], Served]:
    context = podgate_serve(state_dir, "--listen", listen, "--clusters", str(LOCAL), "--metrics-listen", "off")
    return context, await asyncio.to_thread(context.__enter__)


async def test_streams_that_reached_the_gateway_ride_out_its_restart(world: SimWorld, tmp_path: Path) -> None:
    context, served = await _serve(tmp_path, "127.0.0.1:0")
    gateway = ["--gateway", served.address]
    commands: list[Command] = []
    try:
        run = await Command.start("run", *gateway, "--request-id", "ride", "--image", "python:3.12", "--",
                                  "python", "-c", CODE)  # fmt: skip
        commands.append(run)
        await run.until("tick 1")
        attach, logs, pods, clusters = followers = [
            await Command.start(*words, *gateway)
            for words in (("attach", "ride"), ("logs", "-f", "ride"), ("pods", "list", "--watch"),
                          ("clusters", "list", "--watch"))
        ]  # fmt: skip
        commands += followers
        for follower, seen in ((attach, "tick 1"), (logs, "tick 1"), (pods, "ride"), (clusters, "local-eu-gpu")):
            await follower.until(seen)
        await asyncio.to_thread(context.__exit__, None, None, None)  # SIGTERM
        await asyncio.sleep(OUTAGE)
        assert all(c.process.returncode is None for c in commands), [c.lines[-3:] for c in commands]
        context, _ = await _serve(tmp_path, served.address)
        for stream in (run, attach, logs):
            assert await stream.finish() == 0, (stream.lines[-5:], await stream.stderr())
            ticks = [line for line in stream.lines if line.startswith("tick ")]
            assert ticks == [f"tick {i}" for i in range(TICKS)], stream.lines[:5]
        await pods.until("Succeeded")
        assert clusters.process.returncode is None
        for watch in (pods, clusters):
            assert await watch.interrupt() in (0, 130), await watch.stderr()
    finally:
        for command in commands:
            if command.process.returncode is None:
                command.process.kill()
                await command.process.wait()
            if command.reader is not None:
                await command.reader
        await asyncio.to_thread(context.__exit__, None, None, None)

