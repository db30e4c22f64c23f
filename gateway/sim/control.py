"""The control endpoint of a SimWorld: faults switched at run time over loopback HTTP.

A separate port from the clusters' API servers, so that it still answers during an API outage.
Every request needs `Authorization: Bearer <control token>` (`podgate sim` writes the URL and token to
DIR/control.yaml, mode 0600; in Python: `world.control.url`, `world.control.token`).

    GET    /clusters                          names and URLs
    GET    /clusters/{c}/faults               current settings
    PATCH  /clusters/{c}/faults               {"latency": 0.2, "errorRate": 0.1, "errorCode": 429,
                                               "retryAfter": 1, "maxInFlight": 50, "outage": true, "blackhole": true,
                                               "lostAnswers": [{"verb": "create", "resource": "pods",
                                                                "count": 1}]}
    POST   /clusters/{c}/drop-watches         ends every open watch; {"dropped": n}
    POST   /clusters/{c}/silence-logs         every open log stream goes silent for good (no FIN, no RST)
    POST   /clusters/{c}/rotate-certificates  a new CA and server certificate; {"newAddress": true} moves
                                              the API server to a new port too; {"url": ...}
    POST   /clusters/{c}/nodes/{node}/fail    node failure (pods go Failed/NodeLost)
    POST   /clusters/{c}/nodes/{node}/recover
    GET    /clusters/{c}/requests             counters and peaks in flight per (verb, resource), 429s answered,
                                              and the recent request log
    DELETE /clusters/{c}/requests             resets them
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.sim.errors import SimError

if TYPE_CHECKING:
    from gateway.sim.cluster import SimCluster, SimWorld

_SETTINGS = {
    "latency": "latency", "errorRate": "error_rate", "errorCode": "error_code", "retryAfter": "retry_after",
    "maxInFlight": "max_in_flight",
}  # fmt: skip
_SWITCHES = ("outage", "blackhole")


def _lost_answers(value: Any) -> list[tuple[str, str, int]]:
    """[{"verb", "resource", "count"}] checked whole before any is applied (ValueError when wrong)."""
    if not isinstance(value, list):
        raise ValueError('lostAnswers must be a list of {"verb", "resource", "count"}')
    lost = []
    for entry in value:
        if not isinstance(entry, dict) or set(entry) - {"verb", "resource", "count"}:
            raise ValueError(f'each lostAnswers entry is {{"verb", "resource", "count"}}, got {entry!r}')
        verb, resource, count = entry.get("verb"), entry.get("resource"), entry.get("count", 1)
        if not isinstance(verb, str) or not isinstance(resource, str) or not verb or not resource:
            raise ValueError(f"lostAnswers: verb and resource must be non-empty strings, got {entry!r}")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ValueError(f"lostAnswers: count must be an integer >= 0, got {count!r}")
        lost.append((verb, resource, count))
    return lost


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class ControlServer:
    def __init__(self, world: SimWorld, *, port: int = 0, host: str = "127.0.0.1") -> None:
        self.world = world
        self.host = host
        self.port = port
        self.token = secrets.token_urlsafe(24)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/clusters", self._clusters)
        app.router.add_get("/clusters/{c}/faults", self._cluster(self._get_faults))
        app.router.add_patch("/clusters/{c}/faults", self._cluster(self._set_faults))
        app.router.add_post("/clusters/{c}/drop-watches", self._cluster(self._drop))
        app.router.add_post("/clusters/{c}/silence-logs", self._cluster(self._silence_logs))
        app.router.add_post("/clusters/{c}/rotate-certificates", self._cluster(self._rotate))
        app.router.add_post("/clusters/{c}/nodes/{node}/{action:fail|recover}", self._cluster(self._node))
        app.router.add_get("/clusters/{c}/requests", self._cluster(self._requests))
        app.router.add_delete("/clusters/{c}/requests", self._cluster(self._reset))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return _error(401, "the control endpoint needs 'Authorization: Bearer <control token>'")
        try:
            return await handler(request)
        except (ValueError, TypeError) as e:
            return _error(400, str(e))
        except SimError as e:
            return _error(e.code, e.message)

    def _cluster(
        self, fn: Callable[[SimCluster, web.Request], Awaitable[Any]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            cluster = self.world.clusters.get(request.match_info["c"])
            if cluster is None:
                return _error(
                    404, f"no simulated cluster {request.match_info['c']!r}: {', '.join(self.world.clusters)}"
                )
            return web.json_response(await fn(cluster, request))

        return handler

    async def _clusters(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            [{"name": c.name, "url": c.url, "kubeconfig": str(c.kubeconfig_path)} for c in self.world.clusters.values()]
        )

    @staticmethod
    async def _get_faults(cluster: SimCluster, request: web.Request) -> Any:
        return cluster.faults.settings()

    @staticmethod
    async def _set_faults(cluster: SimCluster, request: web.Request) -> Any:
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("expected a JSON object of fault settings")
        unknown = set(body) - set(_SETTINGS) - set(_SWITCHES) - {"lostAnswers"}
        if unknown:
            known = sorted([*_SETTINGS, *_SWITCHES, "lostAnswers"])
            raise ValueError(f"unknown fault settings {sorted(unknown)}: use {known}")
        for switch in _SWITCHES:
            if switch in body and not isinstance(body[switch], bool):
                raise ValueError(f"{switch} must be true or false, got {body[switch]!r}")
        lost = _lost_answers(body.get("lostAnswers", []))
        cluster.set_faults(**{_SETTINGS[k]: v for k, v in body.items() if k in _SETTINGS})
        for verb, resource, count in lost:
            cluster.lose_answers(verb, resource, count)
        if "outage" in body:
            await (cluster.outage() if body["outage"] else cluster.restore())
        if "blackhole" in body:
            cluster.blackhole(body["blackhole"])
        return cluster.faults.settings()

    @staticmethod
    async def _drop(cluster: SimCluster, request: web.Request) -> Any:
        return {"dropped": cluster.drop_watches()}

    @staticmethod
    async def _silence_logs(cluster: SimCluster, request: web.Request) -> Any:
        cluster.silence_log_streams()
        return {"silenced": cluster.faults.log_silences}

    @staticmethod
    async def _rotate(cluster: SimCluster, request: web.Request) -> Any:
        body = await request.json() if request.can_read_body else {}
        if not isinstance(body, dict) or set(body) - {"newAddress"} or not isinstance(body.get("newAddress", False), bool):
            raise ValueError('expected {"newAddress": true|false} or no body')
        await cluster.rotate_certificates(new_address=body.get("newAddress", False))
        return {"url": cluster.url, "kubeconfig": str(cluster.kubeconfig_path)}

    @staticmethod
    async def _node(cluster: SimCluster, request: web.Request) -> Any:
        node = request.match_info["node"]
        if request.match_info["action"] == "fail":
            await cluster.fail_node(node)
        else:
            await cluster.recover_node(node)
        return {"node": node, "action": request.match_info["action"]}

    @staticmethod
    async def _requests(cluster: SimCluster, request: web.Request) -> Any:
        return cluster.faults.snapshot()

    @staticmethod
    async def _reset(cluster: SimCluster, request: web.Request) -> Any:
        cluster.faults.reset_counters()
        return {"reset": True}
