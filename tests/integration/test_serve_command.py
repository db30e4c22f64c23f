"""`podgate serve` (what `make run` starts) serves health over gRPC and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import asyncpg
import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway._proto.podgate.v1 import clusters_pb2, clusters_pb2_grpc
from gateway.policy.identity import new_token
from tests.conftest import BIN, ROOT, clean_env, podgate_serve
from tests.postgres import PostgresServer, database_name


async def test_serve_answers_health_and_stops_on_sigterm(tmp_path: Path) -> None:
    """server.event_loop auto keeps asyncio's loop with the embedded clusters (their pods are processes)."""
    with podgate_serve(tmp_path) as served:
        assert any("embedded local clusters: local-eu-gpu, local-eu-cpu, local-us-gpu" in p for p in served.printed)
        assert "podgate: event loop asyncio\n" in served.printed
        async with grpc.aio.insecure_channel(served.address) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(timeout=20) == 0


def write_config(path: Path, tenants: dict[str, str]) -> dict[str, str]:
    """A config with one static token per tenant (tenant -> token), every tenant allowed everything."""
    tokens, entries = {}, []
    for name, token_id in tenants.items():
        token, hashed = new_token(token_id)
        tokens[name] = token
        entries.append({"id": token_id, "tenant": name, "hash": hashed})
    document = {
        "tenants": [{"name": n, "clusters": ["*"], "namespaces": ["*"]} for n in tenants],
        "authentication": {"static_tokens": entries},
        "logging": {"format": "json"},
    }
    path.write_text(yaml.safe_dump(document))
    return tokens


async def cluster_names(address: str, token: str = "") -> set[str]:
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await clusters_pb2_grpc.ClusterServiceStub(channel).ListClusters(
            clusters_pb2.ListClustersRequest(), metadata=metadata, timeout=10
        )
    return {c.cluster.name for c in reply.clusters}


async def test_serve_with_a_config_file_authenticates_reloads_on_sighup_and_serves_health_apart(tmp_path: Path) -> None:
    config = tmp_path / "podgate.yaml"
    first = write_config(config, {"team-a": "team-a-token"})
    with podgate_serve(tmp_path / "state", "--config", str(config), "--health-listen", "127.0.0.1:0") as served:
        assert served.process.stdout is not None
        described = served.process.stdout.readline()
        assert "PLAIN TEXT (loopback only); 1 tenant(s)" in described, described
        health_line = served.process.stdout.readline()
        health_port = int(health_line.rsplit(" ", 1)[1])
        async with grpc.aio.insecure_channel(f"127.0.0.1:{health_port}") as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.aio.AioRpcError) as caught:  # the health port serves nothing else
                await clusters_pb2_grpc.ClusterServiceStub(channel).ListClusters(clusters_pb2.ListClustersRequest())
            assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await cluster_names(served.address)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert len(await cluster_names(served.address, first["team-a"])) == 3

        config.write_text("tenants: [{name: broken, clusters: 7}]\n")  # a bad file: the running config stays
        served.process.send_signal(signal.SIGHUP)
        second = write_config(tmp_path / "next.yaml", {"team-a": "team-a-token", "team-b": "team-b-token"})
        await asyncio.sleep(0.5)
        assert len(await cluster_names(served.address, first["team-a"])) == 3
        config.write_text((tmp_path / "next.yaml").read_text())
        served.process.send_signal(signal.SIGHUP)
        for _ in range(100):
            try:
                assert len(await cluster_names(served.address, second["team-b"])) == 3
                break
            except grpc.aio.AioRpcError as e:
                assert e.code() == grpc.StatusCode.UNAUTHENTICATED
                await asyncio.sleep(0.1)
        else:
            pytest.fail("the reloaded tenant was never accepted")
        with pytest.raises(grpc.aio.AioRpcError) as caught:  # team-a's old token was replaced
            await cluster_names(served.address, first["team-a"])
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(timeout=20) == 0
        assert served.process.stderr is not None
        logged = served.process.stderr.read()
        assert "configuration not reloaded" in logged and "tenants[0].clusters" in logged
        for token in (*first.values(), *second.values()):
            assert token.split(".")[1] not in logged


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("listen: 0.0.0.0:50051\n", (), "plain-text listener needs tls.cert_file"),
        ("limits: {containers: 0}\n", (), "limits: containers must be a positive integer"),
        ("tls: {cert_file: /nonexistent.crt, key_file: /nonexistent.key}\n", (), "tls.cert_file: /nonexistent.crt does not exist"),
        ("", ("--event-loop", "uvloop"), "server.event_loop uvloop cannot run the embedded local clusters"),
    ],
)  # fmt: skip
def test_serve_refuses_a_bad_configuration_naming_the_key(
    tmp_path: Path, content: str, args: tuple[str, ...], message: str
) -> None:
    config = tmp_path / "podgate.yaml"
    config.write_text(content)
    listen = () if "listen" in content else ("--listen", "127.0.0.1:0")
    done = subprocess.run(
        [str(BIN / "podgate"), "serve", "--config", str(config), *listen, "--state-dir", str(tmp_path), *args],
        cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert message in done.stderr


async def test_a_reload_compares_like_with_like_and_names_what_needs_a_restart(tmp_path: Path) -> None:
    """Flags and the embedded default are applied to the reloaded file as at start: only keys the file
    changed are reported, and a change of cluster files is reported (not silently dropped)."""
    config = tmp_path / "podgate.yaml"
    config.write_text(yaml.safe_dump({"logging": {"format": "json"}}))
    with podgate_serve(tmp_path / "state", "--config", str(config)) as served:
        assert len(await cluster_names(served.address)) == 3  # the embedded clusters
        tokens = write_config(tmp_path / "next.yaml", {"team-a": "team-a-token"})
        document = yaml.safe_load((tmp_path / "next.yaml").read_text())
        document["clusters"] = {"files": [str(ROOT / "clusters" / "local.yaml")]}
        config.write_text(yaml.safe_dump(document))
        served.process.send_signal(signal.SIGHUP)
        for _ in range(100):  # the tenants are reloadable: once callers must authenticate, the reload ran
            try:
                await cluster_names(served.address)
            except grpc.aio.AioRpcError as e:
                assert e.code() == grpc.StatusCode.UNAUTHENTICATED
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the reloaded tenants never took effect")
        assert len(await cluster_names(served.address, tokens["team-a"])) == 3
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(timeout=20) == 0
        assert served.process.stderr is not None
        logged = served.process.stderr.read()
    warnings = [line for line in logged.splitlines() if "take effect only after a restart" in line]
    assert len(warnings) == 1, logged
    assert warnings[0].rstrip('"}').endswith("after a restart: clusters.files"), warnings


@pytest.mark.parametrize("password_in", ["url", "file"])
async def test_serve_keeps_its_state_where_database_url_says_and_never_shows_the_password(
    tmp_path: Path, postgres_server: PostgresServer, password_in: str
) -> None:
    canary = "serve-canary-pw-0419"
    role = f"podgate_serve_{password_in}"
    await postgres_server.password_role(role, canary)
    async with postgres_server.database(database_name()) as admin_url:
        url = postgres_server.url(str(admin_url.database), user=role, password=canary)
        if password_in == "url":
            args: tuple[str, ...] = ("--database-url", url.render_as_string(hide_password=False))
        else:  # database.password_file, as a mounted Secret would give it
            (tmp_path / "db-password").write_text(canary + "\n")
            config = {"database": {"url": url._replace(password=None).render_as_string(hide_password=False), "password_file": "db-password"}}
            (tmp_path / "podgate.yaml").write_text(yaml.safe_dump(config))
            args = ("--config", str(tmp_path / "podgate.yaml"))
        with podgate_serve(tmp_path, *args) as served:
            assert len(await cluster_names(served.address)) == 3  # the embedded clusters, registered in PostgreSQL
            served.process.send_signal(signal.SIGTERM)
            assert served.process.wait(timeout=30) == 0
            assert served.process.stdout is not None and served.process.stderr is not None
            printed = "".join(served.printed) + served.process.stdout.read() + served.process.stderr.read()
        conn = await asyncpg.connect(host=str(postgres_server.socket_dir), user="postgres", database=admin_url.database)
        try:
            registered = await conn.fetchval("SELECT count(*) FROM clusters")
        finally:
            await conn.close()
    assert registered == 3
    assert f"store: postgresql+asyncpg://{role}{':***' if password_in == 'url' else ''}@" in printed
    assert canary not in printed
    assert not (tmp_path / "podgate.db").exists()  # nothing went to the SQLite default


def test_a_database_password_given_twice_is_one_line_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "db-password").write_text("from-the-file\n")
    config = tmp_path / "podgate.yaml"
    url = "postgresql+asyncpg://podgate:in-the-url-0917@127.0.0.1:1/podgate"
    config.write_text(yaml.safe_dump({"database": {"url": url, "password_file": "db-password"}}))
    done = subprocess.run(
        [str(BIN / "podgate"), "serve", "--config", str(config), "--listen", "127.0.0.1:0", "--state-dir", str(tmp_path)],
        env=clean_env(), capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 2
    assert "database: the database password is given twice" in done.stderr and "db-password" in done.stderr
    assert "Traceback" not in done.stderr
    assert "in-the-url-0917" not in done.stderr + done.stdout
