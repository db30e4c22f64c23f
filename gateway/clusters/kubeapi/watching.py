"""Watches that never end and never miss a change, in three stacked layers (kopf's shape):

    watch_forever     reconnects forever after failures, with backoff, resuming from the last version
      list_then_watch lists (emitting RELISTED with the full state), then watches from the list's
                      resourceVersion; relists when the version has expired (410 Gone)
        one stream    ClusterClient.watch_stream: a single connection with an inactivity timeout

Bookmarks are requested and passed up (type BOOKMARK) so that the version advances on quiet watches;
consumers ignore them.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass

from gateway.clusters.kubeapi.client import ClusterClient
from gateway.clusters.kubeapi.decode import EventType, Narrow, WatchEvent
from gateway.clusters.kubeapi.errors import Gone, KubeError
from gateway.clusters.kubeapi.request import Resource
from gateway.clusters.kubeapi.retry import Draw, backoff_delay, full_jitter
from gateway.credentials.base import CredentialError

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
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


async def list_then_watch(
    client: ClusterClient,
    target: WatchTarget,
    *,
    resource_version: str = "",
    sleep: Sleep = asyncio.sleep,
    draw: Draw = random.random,
) -> AsyncGenerator[WatchEvent, None]:
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
            yield WatchEvent(type=EventType.RELISTED, objects=listing.items, resource_version=version)
        opened, delivered = loop.time(), False
        try:
            async for event in client.watch_stream(
                target.resource, target.namespace, resource_version=version, label_selector=target.label_selector,
                field_selector=target.field_selector, narrow=target.narrow,
            ):  # fmt: skip
                version, delivered = event.resource_version or version, True
                yield event
        except Gone:
            log.info("cluster %s: %s watch version %s expired, relisting", client.name, target.resource.plural, version)
            version = ""
            continue
        if not delivered and loop.time() - opened < QUICK_CLOSE_SECONDS:
            # A server closing watches at once must not make us spin, nor every cluster's watch reopen together.
            await sleep(full_jitter(QUICK_CLOSE_SECONDS, draw()))


async def watch_forever(
    client: ClusterClient,
    target: WatchTarget,
    *,
    backoff: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
    sleep: Sleep = asyncio.sleep,
    draw: Draw = random.random,
) -> AsyncGenerator[WatchEvent, None]:
    """Never ends by itself (cancel or close it). After a failure it waits (backoff with full jitter,
    reset by the next event) and resumes from the last version seen, so a short outage costs no relist."""
    version, failures = "", 0
    while True:
        try:
            async for event in list_then_watch(client, target, resource_version=version, sleep=sleep, draw=draw):
                version, failures = event.resource_version or version, 0
                yield event
        except TRANSIENT as e:
            failures += 1
            delay = backoff_delay(backoff, failures, draw())
            log.warning(
                "cluster %s: %s watch failed (%s); reconnecting in %.1fs (failure %d)",
                client.name, target.resource.plural, e, delay, failures,
            )  # fmt: skip
            await sleep(delay)
