"""The state directory's lock on a real file: one holder at a time, named to the next; never stale."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.errors import FailedPrecondition
from gateway.store.lock import Holder, StateDirInUse, StateLock
from tests.conftest import ROOT, clean_env

HOLD = """
import sys, time
from pathlib import Path
from gateway.store.lock import StateLock
StateLock.acquire(Path(sys.argv[1]), listen="127.0.0.1:4242")
print("held", flush=True)
time.sleep(60)
"""


def test_the_second_acquirer_is_refused_with_the_holder_named_until_release(tmp_path: Path) -> None:
    first = StateLock.acquire(tmp_path, listen="127.0.0.1:0")
    first.update(listen="127.0.0.1:5051")
    with pytest.raises(StateDirInUse) as refused:
        StateLock.acquire(tmp_path, listen="127.0.0.1:6061")
    assert isinstance(refused.value, FailedPrecondition)
    assert f"pid {os.getpid()} on host" in str(refused.value)
    assert "listening on 127.0.0.1:5051 (since 20" in str(refused.value)
    first.release()
    first.release()  # twice is harmless
    second = StateLock.acquire(tmp_path, listen="127.0.0.1:6061")
    assert second.holder.listen == "127.0.0.1:6061"
    second.release()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(StateDirInUse, match=rf"pid {holder.pid} on host .*, listening on 127.0.0.1:4242"):
            StateLock.acquire(tmp_path, listen="x")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    StateLock.acquire(tmp_path, listen="127.0.0.1:1").release()


@pytest.mark.parametrize("content", ["", "{", "[]", '{"pid": "x"}', '{"pid": 1}', "\x00\x01"])
def test_an_unreadable_lock_file_still_refuses_without_a_holder_named(tmp_path: Path, content: str) -> None:
    assert Holder.parse(content) is None
    held = StateLock.acquire(tmp_path, listen="127.0.0.1:1")
    try:
        (tmp_path / "podgate.lock").write_text(content)
        with pytest.raises(StateDirInUse, match="a process that has not yet written who it is"):
            StateLock.acquire(tmp_path, listen="x")
    finally:
        held.release()
