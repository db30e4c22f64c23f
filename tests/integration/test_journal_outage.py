"""The journal over a PostgreSQL server that stops and starts again (a server of the test's own, really
stopped): log lines whose write failed are written later, in order, none lost."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from gateway import domain
from gateway.pods.journal import Journal
from gateway.store.sql import SqlStore
from tests.e2e.conftest import eventually
from tests.postgres import stoppable_server

T = datetime(2026, 12, 4, 13, 0, tzinfo=UTC)


def line(i: int) -> domain.LogLine:
    return domain.LogLine(container="base", time=T + timedelta(seconds=i), text=f"line {i}")


async def texts(store: SqlStore) -> list[str]:
    return [str(event.payload["text"]) for _, event in await store.read_events("r1")]


async def test_lines_whose_write_failed_are_written_again_in_order() -> None:
    """Line 3's write finds the server stopped and fails (after the store's wait); it used to be dropped while
    line 4, read later from the container, was written: line 3 was lost for good."""
    async with stoppable_server() as server:
        url = (await server.create_database("journal")).render_as_string(hide_password=False)
        store = await SqlStore.open(url, unavailable_after=0.5)
        try:
            await store.create_pod_record(
                domain.PodRecord(request=domain.PodRequest(request_id="r1", pod={}), phase=domain.PodPhase.QUEUED)
            )
            journal = Journal(store, log_flush_seconds=0.01)
            for i in range(3):
                journal.append_log("r1", line(i))
            await eventually(lambda: texts(store), every=0.05)
            await server.stop()
            journal.append_log("r1", line(3))
            await asyncio.sleep(1.5)  # its write gave up waiting at least once
            await server.start()
            journal.append_log("r1", line(4))
            await eventually(lambda: _all_five(store), within=20)
            await journal.close()
            assert await texts(store) == [f"line {i}" for i in range(5)]
        finally:
            await store.close()


async def _all_five(store: SqlStore) -> bool:
    return len(await texts(store)) >= 5
