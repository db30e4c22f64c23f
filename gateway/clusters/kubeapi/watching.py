"""Watches that never end and never miss a change, in three stacked layers (kopf's shape):

    watch_forever     reconnects forever after failures, with backoff, resuming from the last version
      list_then_watch lists (emitting RELISTED with the full state), then watches from the list's
                      resourceVersion; relists when the version has expired (410 Gone)
        one stream    ClusterClient.watch_batches: a single connection with an inactivity timeout

The layers pass on the events of each chunk read as one list (`*_batches`): a consumer that handles a
chunk's events in one step pays the layers once a chunk, not once an event (ClusterRuntime's watches, ~5
pod events a chunk under load); `watch_forever` and `list_then_watch` hand them out one by one.

Bookmarks are requested and passed up (type BOOKMARK) so that the version advances on quiet watches;
consumers ignore them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import ParamSpec

from gateway.clusters.kubeapi.client import ClusterClient
from gateway.clusters.kubeapi.decode import EventType, Narrow, WatchEvent
from gateway.clusters.kubeapi.errors import Gone, KubeError
from gateway.clusters.kubeapi.request import Resource
from gateway.clusters.kubeapi.retry import Draw, backoff_delay, full_jitter
from gateway.credentials.base import CredentialError

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
_P = ParamSpec("_P")
QUICK_CLOSE_SECONDS = 1.0
# Failures worth waiting out: the cluster may come back, or its credentials may be fixed.
TRANSIENT: tuple[type[Exception], ...] = (KubeError, CredentialError)


@dataclass(frozen=True, kw_only=True)
class WatchTarget:
    resource: Resource
    namespace: str | None = None
    label_selector: str = ""
    field_selector: str = ""
    narrow: Narrow | None = None  # each watched object decoded into these fields only (a list's are whole)


async def list_then_watch_batches(
    client: ClusterClient,
    target: WatchTarget,
    *,
    resource_version: str = "",
    sleep: Sleep = asyncio.sleep,
    draw: Draw = random.random,
) -> AsyncGenerator[list[WatchEvent], None]:
    """Watch from `resource_version` when given (no relist), else list first; relist on 410 Gone.

    Returns only by raising: a clean end of one stream just opens the next from the last version.
    """
    version = resource_version
    loop = asyncio.get_running_loop()
    while True:
        if not version:
            listing = await client.list_all(
                target.resource, target.namespace, label_selector=target.label_selector,
                field_selector=target.field_selector,
            )  # fmt: skip
            version = listing.resource_version
            yield [WatchEvent(type=EventType.RELISTED, objects=listing.items, resource_version=version)]
        opened, delivered = loop.time(), False
        try:
            async for events in client.watch_batches(
                target.resource, target.namespace, resource_version=version, label_selector=target.label_selector,
                field_selector=target.field_selector, narrow=target.narrow,
            ):  # fmt: skip
                version, delivered = last_version(events, version), True
                yield events
        except Gone:
            log.info("cluster %s: %s watch version %s expired, relisting", client.name, target.resource.plural, version)
            version = ""
            continue
        if not delivered and loop.time() - opened < QUICK_CLOSE_SECONDS:
            # A server closing watches at once must not make us spin, nor every cluster's watch reopen together.
            await sleep(full_jitter(QUICK_CLOSE_SECONDS, draw()))


async def watch_forever_batches(
    client: ClusterClient,
    target: WatchTarget,
    *,
    backoff: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
    sleep: Sleep = asyncio.sleep,
    draw: Draw = random.random,
) -> AsyncGenerator[list[WatchEvent], None]:
    """Never ends by itself (cancel or close it). After a failure it waits (backoff with full jitter,
    reset by the next event) and resumes from the last version seen, so a short outage costs no relist."""
    version, failures = "", 0
    while True:
        try:
            async for events in list_then_watch_batches(
                client, target, resource_version=version, sleep=sleep, draw=draw
            ):  # fmt: skip
                version, failures = last_version(events, version), 0
                yield events
        except TRANSIENT as e:
            failures += 1
            delay = backoff_delay(backoff, failures, draw())
            log.warning(
                "cluster %s: %s watch failed (%s); reconnecting in %.1fs (failure %d)",
                client.name, target.resource.plural, e, delay, failures,
            )  # fmt: skip
            await sleep(delay)


def last_version(events: list[WatchEvent], version: str) -> str:
    """The resourceVersion to resume from after `events`: the last one an event carries, else `version`."""
    for event in reversed(events):
        if event.resource_version:
            return event.resource_version
    return version


def one_by_one(
    batched: Callable[_P, AsyncGenerator[list[WatchEvent], None]],
) -> Callable[_P, AsyncGenerator[WatchEvent, None]]:
    """The same watch, its events handed out one at a time (for consumers that take one per step)."""

    @functools.wraps(batched)
    async def events(*args: _P.args, **kwargs: _P.kwargs) -> AsyncGenerator[WatchEvent, None]:
        async with aclosing(batched(*args, **kwargs)) as batches:
            async for batch in batches:
                for event in batch:
                    yield event

    return events


list_then_watch = one_by_one(list_then_watch_batches)
watch_forever = one_by_one(watch_forever_batches)
