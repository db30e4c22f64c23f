"""A relay in front of PostgreSQL's Unix socket that can lose the answer to a COMMIT, or the COMMIT itself.

The one fault a database client cannot settle by itself: the connection drops after COMMIT was sent, so
the transaction may or may not have committed. Stopping the server or killing a backend cannot produce it
on purpose (either ends the transaction before the COMMIT is read); a relay on the wire can. It forwards
bytes both ways untouched until armed; armed, at the next client message that is a COMMIT it either
forwards the COMMIT, waits for the server's answer (the transaction committed) and closes both sides
without passing it on (`lose="answer"`), or closes both sides without forwarding it (`lose="commit"`).
It also keeps what clients sent, to count the statements a client makes (BEGIN, ROLLBACK) on the wire,
and `messages` splits what one connection sent into PostgreSQL's frontend messages (round trips: each
simple query 'Q' and each Sync 'S' of the extended protocol is answered once).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

COMMIT = b"COMMIT"  # asyncpg sends it as a simple query: 'Q', a length, "COMMIT;\0"

Lose = Literal["answer", "commit"]


@dataclass
class Relay:
    directory: Path  # use as the client's `host` (the socket file keeps the server's port in its name)
    armed: Lose | None = None
    cuts: int = 0
    committed_answers_lost: int = 0
    sent: bytearray = field(default_factory=bytearray)  # every byte clients sent (a test's few statements)
    by_connection: list[bytearray] = field(default_factory=list)  # the same, each connection's apart
    _connections: set[asyncio.Task[None]] = field(default_factory=set)

    def arm(self, lose: Lose) -> None:
        """The next COMMIT through the relay loses its answer, or is itself lost."""
        self.armed = lose


def messages(sent: bytes) -> list[tuple[bytes, bytes]]:
    """The frontend messages (type, body) in `sent`: what one connection sent after its startup, from the
    start of a message."""
    found: list[tuple[bytes, bytes]] = []
    at = 0
    while at + 5 <= len(sent):
        length = int.from_bytes(sent[at + 1 : at + 5], "big")
        found.append((sent[at : at + 1], bytes(sent[at + 5 : at + 1 + length])))
        at += 1 + length
    assert at == len(sent), "not whole messages"
    return found


@contextlib.asynccontextmanager
async def pg_relay(server_socket_dir: Path) -> AsyncIterator[Relay]:
    """A relay for the server whose socket is in `server_socket_dir`, while in use."""
    target = (await asyncio.to_thread(lambda: sorted(server_socket_dir.glob(".s.PGSQL.*"))))[0]
    with tempfile.TemporaryDirectory(prefix="podgate-pgrelay-") as directory:
        relay = Relay(Path(directory))
        server = await asyncio.start_unix_server(
            lambda r, w: _serve(relay, target, r, w), path=str(relay.directory / target.name)
        )
        try:
            yield relay
        finally:
            server.close()
            for task in list(relay._connections):
                task.cancel()
            await asyncio.gather(*relay._connections, return_exceptions=True)
            await server.wait_closed()


async def _serve(relay: Relay, target: Path, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
    task = asyncio.current_task()
    assert task is not None
    relay._connections.add(task)
    server_r, server_w = await asyncio.open_unix_connection(str(target))
    answer_due = asyncio.Event()
    cut = asyncio.Event()
    mine = bytearray()
    relay.by_connection.append(mine)

    async def upstream() -> None:
        while data := await client_r.read(65536):
            relay.sent += data
            mine.extend(data)
            if relay.armed is not None and COMMIT in data:
                lose, relay.armed = relay.armed, None
                relay.cuts += 1
                if lose == "commit":
                    cut.set()
                    return
                answer_due.set()  # before it is sent: downstream swallows the answer, then cuts
                server_w.write(data)
                await server_w.drain()
                return
            server_w.write(data)
            await server_w.drain()
        cut.set()

    async def downstream() -> None:
        while data := await server_r.read(65536):
            if answer_due.is_set():
                relay.committed_answers_lost += 1
                cut.set()
                return
            client_w.write(data)
            await client_w.drain()
        cut.set()

    tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
    try:
        await cut.wait()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for w in (client_w, server_w):
            w.close()
        relay._connections.discard(task)
