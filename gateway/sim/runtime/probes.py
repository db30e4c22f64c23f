"""Readiness and liveness probes of `process` containers, as the kubelet runs them.

`parse` turns a probe into a `Probe` (pure); `check` runs it once; `watch` runs it for a container's life
and reports each change of verdict after successThreshold/failureThreshold results in a row. Containers
share the host's network here, so httpGet and tcpSocket probes go to 127.0.0.1 (the pod IP is notional).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from gateway.sim.runtime.base import ExecProcess
from gateway.sim.runtime.spec import ContainerConfigError

Obj = Mapping[str, Any]
Exec = Callable[[list[str]], Awaitable[ExecProcess]]
OUTPUT_LIMIT = 10 * 1024  # the kubelet keeps 10 KiB of a probe's output


@dataclass(frozen=True)
class Timing:
    """When and how often to probe (Kubernetes defaults: period 10 s, timeout 1 s, thresholds 1 and 3)."""

    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3


@dataclass(frozen=True)
class Probe:
    kind: str  # exec | http | tcp
    timing: Timing = field(default_factory=Timing)
    command: tuple[str, ...] = ()
    port: int = 0
    path: str = "/"
    scheme: str = "HTTP"
    headers: tuple[tuple[str, str], ...] = ()


def _port(value: Any, container: Obj) -> int:
    if isinstance(value, int):
        return value
    for port in container.get("ports") or []:
        if port.get("name") == value:
            return int(port["containerPort"])
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ContainerConfigError(f"probe port {value!r} is neither a number nor a named port of the container")


def parse(probe: Obj, container: Obj) -> Probe:
    """The probe's action and timings."""
    timing = Timing(
        initial_delay=float(probe.get("initialDelaySeconds", 0)),
        period=float(probe.get("periodSeconds", 10)),
        timeout=float(probe.get("timeoutSeconds", 1)),
        success_threshold=int(probe.get("successThreshold", 1)),
        failure_threshold=int(probe.get("failureThreshold", 3)),
    )
    if "exec" in probe:
        return Probe("exec", timing, command=tuple(probe["exec"].get("command") or ()))
    if "httpGet" in probe:
        get = probe["httpGet"]
        headers = tuple((h["name"], h["value"]) for h in get.get("httpHeaders") or [])
        port = _port(get.get("port"), container)
        return Probe(
            "http", timing, port=port, path=get.get("path") or "/", scheme=get.get("scheme") or "HTTP", headers=headers
        )
    if "tcpSocket" in probe:
        return Probe("tcp", timing, port=_port(probe["tcpSocket"].get("port"), container))
    raise ContainerConfigError(f"unsupported probe handler {sorted(probe)}: use exec, httpGet or tcpSocket")


async def _exec(probe: Probe, run: Exec) -> tuple[bool, str]:
    process = await run(list(probe.command))
    try:
        async with asyncio.timeout(probe.timing.timeout):
            out = b"".join([chunk async for chunk in process.stdout])
            err = b"".join([chunk async for chunk in process.stderr])
            code = await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()
        return False, f"command timed out after {probe.timing.timeout:g}s"
    return code == 0, (out + err)[:OUTPUT_LIMIT].decode(errors="replace")


async def _http(probe: Probe) -> tuple[bool, str]:
    url = f"{probe.scheme.lower()}://127.0.0.1:{probe.port}{probe.path}"
    timeout = aiohttp.ClientTimeout(total=probe.timing.timeout)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, headers=dict(probe.headers), ssl=False, allow_redirects=False) as response,
        ):
            ok = 200 <= response.status < 400
            return ok, "" if ok else f"HTTP probe failed with statuscode: {response.status}"
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        return False, f'Get "{url}": {e or type(e).__name__}'


async def _tcp(probe: Probe) -> tuple[bool, str]:
    try:
        async with asyncio.timeout(probe.timing.timeout):
            _, writer = await asyncio.open_connection("127.0.0.1", probe.port)
    except (OSError, TimeoutError) as e:
        return False, f"dial tcp 127.0.0.1:{probe.port}: {e or 'i/o timeout'}"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True, ""


async def check(probe: Probe, run: Exec) -> tuple[bool, str]:
    """One probe: (passed, what it said)."""
    if probe.kind == "exec":
        return await _exec(probe, run)
    if probe.kind == "http":
        return await _http(probe)
    return await _tcp(probe)


async def watch(
    probe: Probe,
    run: Exec,
    *,
    initial: bool,
    changed: Callable[[bool], None],
    failed: Callable[[str], None],
) -> None:
    """Probes until cancelled: `failed(output)` for each failed probe (the kubelet's Unhealthy events) and
    `changed(passed)` when successThreshold/failureThreshold results in a row flip the state from `initial`."""
    await asyncio.sleep(probe.timing.initial_delay)
    state, streak = initial, 0
    while True:
        passed, output = await check(probe, run)
        if not passed:
            failed(output)
        streak = streak + 1 if passed != state else 0
        if streak >= (probe.timing.success_threshold if passed else probe.timing.failure_threshold):
            state, streak = passed, 0
            changed(passed)
        await asyncio.sleep(probe.timing.period)
