"""Scheduler + kubelet on the store with the process runtime: real processes, real files, real signals."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import time
from collections.abc import Iterator

import pytest

from gateway.sim.errors import BadRequest, NotFound
from gateway.sim.kubelet import Kubelet
from gateway.sim.store import ObjectStore
from tests.sim.kubelet_fixtures import (
    events,
    first_line,
    node,
    phase,
    pod,
    read_logs,
    sh,
    start,
    wait_gone,
    wait_pod,
    waiting_reason,
)
from tests.sim.kubelet_fixtures import kubelet as kubelet
from tests.sim.kubelet_fixtures import store as store
from tests.sim.leaks import child_processes
from tests.sim.leaks import no_leaks as no_leaks

XCOM = {"name": "xcom", "mountPath": "/airflow/xcom"}


async def test_pod_runs_init_then_main_and_reports_like_a_kubelet(store: ObjectStore, kubelet: Kubelet) -> None:
    init = sh("prepare", "echo init-ran > /airflow/xcom/seen", volumeMounts=[XCOM])
    main = sh(
        "base",
        'cat /airflow/xcom/seen; echo "$POD $NS $IP"; echo \'{"rows": 3}\' > /airflow/xcom/return.json; printf done > /dev/termination-log',
        volumeMounts=[XCOM],
        env=[
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        ],
    )
    store.create("pods", pod("job", main, initContainers=[init], volumes=[{"name": "xcom", "emptyDir": {}}]))
    done = await wait_pod(store, "job", phase("Succeeded", "Failed"))
    status = done["status"]
    assert status["phase"] == "Succeeded", status
    assert done["spec"]["nodeName"] == "node-1"
    assert status["hostIP"] == "127.0.0.1" and status["podIP"].startswith("10.244.0.") and status["startTime"]
    [init_status] = status["initContainerStatuses"]
    assert init_status["state"]["terminated"]["reason"] == "Completed" and init_status["ready"] is True
    [main_status] = status["containerStatuses"]
    terminated = main_status["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"], terminated["message"]) == (0, "Completed", "done")
    assert main_status["containerID"].startswith("containerd://") and main_status["ready"] is False
    conditions = {c["type"]: (c["status"], c.get("reason")) for c in status["conditions"]}
    assert conditions["PodScheduled"] == ("True", None) and conditions["Initialized"] == ("True", None)
    assert conditions["Ready"] == ("False", "PodCompleted") and conditions["ContainersReady"] == (
        "False",
        "PodCompleted",
    )
    assert await read_logs(kubelet, "job", "base") == f"init-ran\njob default {status['podIP']}\n"
    stamped = await read_logs(kubelet, "job", "base", timestamps=True, tail_lines=1)
    assert stamped.endswith(f"Z job default {status['podIP']}\n") and stamped[:4].isdigit()
    reasons = [reason for _, reason, _ in events(store, "job")]
    assert reasons[:1] == ["Scheduled"] and reasons.count("Started") == 2 and reasons.count("Created") == 2
    with pytest.raises(BadRequest, match=r"container not found|is not running"):
        await kubelet.exec("default", "job", "base", ["cat", "/airflow/xcom/return.json"], False, False)


async def test_environment_from_secrets_and_configmaps(store: ObjectStore, kubelet: Kubelet) -> None:
    store.create(
        "secrets",
        {
            "metadata": {"name": "creds", "namespace": "default"},
            "data": {"token": base64.b64encode(b"s3cret").decode()},
        },
    )
    store.create("configmaps", {"metadata": {"name": "settings", "namespace": "default"}, "data": {"mode": "fast"}})
    main = sh(
        "main",
        "echo $TOKEN $MODE $GREETING; cat /etc/cfg/mode",
        env=[
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
            {"name": "GREETING", "value": "hi-$(MODE)"},
        ],
        volumeMounts=[{"name": "cfg", "mountPath": "/etc/cfg"}],
    )
    store.create("pods", pod("env", main, volumes=[{"name": "cfg", "configMap": {"name": "settings"}}]))
    await wait_pod(store, "env", phase("Succeeded"))
    assert await read_logs(kubelet, "env", "main") == "s3cret fast hi-fast\nfast"


async def test_missing_secret_is_create_container_config_error(store: ObjectStore, kubelet: Kubelet) -> None:
    main = sh("main", "true", env=[{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}])
    store.create("pods", pod("noconf", main))
    stuck = await wait_pod(store, "noconf", lambda p: waiting_reason(p) == "CreateContainerConfigError")
    assert stuck["status"]["containerStatuses"][0]["state"]["waiting"]["message"] == 'secret "nope" not found'


async def test_on_failure_restarts_until_success_and_keeps_previous_logs(store: ObjectStore, kubelet: Kubelet) -> None:
    script = "n=$(cat /data/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /data/n; echo run $n; [ $n -ge 3 ]"
    main = sh("main", script, volumeMounts=[{"name": "data", "mountPath": "/data"}])
    store.create("pods", pod("flaky", main, restartPolicy="OnFailure", volumes=[{"name": "data", "emptyDir": {}}]))
    done = await wait_pod(store, "flaky", phase("Succeeded", "Failed"))
    status = done["status"]["containerStatuses"][0]
    assert done["status"]["phase"] == "Succeeded" and status["restartCount"] == 2
    assert status["lastState"]["terminated"]["exitCode"] == 1 and status["lastState"]["terminated"]["reason"] == "Error"
    assert await read_logs(kubelet, "flaky", "main") == "run 3\n"
    assert await read_logs(kubelet, "flaky", "main", previous=True) == "run 2\n"
    assert ("Warning", "BackOff") in {(t, r) for t, r, _ in events(store, "flaky")}


async def test_never_and_a_failing_command_fails_the_pod(store: ObjectStore, kubelet: Kubelet) -> None:
    store.create(
        "pods", pod("bad", sh("main", "echo boom >&2; exit 4", terminationMessagePolicy="FallbackToLogsOnError"))
    )
    done = await wait_pod(store, "bad", phase("Failed"))
    terminated = done["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"], terminated["message"]) == (4, "Error", "boom\n")


async def test_missing_image_backs_off_and_logs_say_so(store: ObjectStore, kubelet: Kubelet) -> None:
    store.create("pods", pod("nopull", {"name": "main", "image": "ghcr.io/acme/missing:1"}))
    stuck = await wait_pod(store, "nopull", lambda p: waiting_reason(p) == "ImagePullBackOff")
    assert stuck["status"]["phase"] == "Pending"
    kinds = {(t, r, m) for t, r, m in events(store, "nopull")}
    assert ("Warning", "Failed", "Error: ErrImagePull") in kinds and (
        "Warning",
        "Failed",
        "Error: ImagePullBackOff",
    ) in kinds
    with pytest.raises(
        BadRequest, match='container "main" in pod "nopull" is waiting to start: trying and failing to pull image'
    ):
        await read_logs(kubelet, "nopull", "main")
    store.delete("pods", "default", "nopull")
    await wait_gone(store, "nopull")


async def test_memory_limit_ends_as_oom_killed(store: ObjectStore, kubelet: Kubelet) -> None:
    hog = sh("main", "exec python3 -c 'b = bytearray(400 * 2**20)'", resources={"limits": {"memory": "64Mi"}})
    store.create("pods", pod("hog", hog))
    done = await wait_pod(store, "hog", phase("Failed"))
    terminated = done["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (137, "OOMKilled")


async def test_active_deadline_fails_the_pod(store: ObjectStore, kubelet: Kubelet) -> None:
    store.create("pods", pod("slow", sh("main", "sleep 30"), activeDeadlineSeconds=1, terminationGracePeriodSeconds=0))
    done = await wait_pod(
        store, "slow", lambda p: phase("Failed")(p) and "terminated" in p["status"]["containerStatuses"][0]["state"]
    )
    assert done["status"]["reason"] == "DeadlineExceeded"
    assert done["status"]["message"] == "Pod was active on the node longer than the specified deadline"
    assert done["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137
    assert ("Warning", "DeadlineExceeded") in {(t, r) for t, r, _ in events(store, "slow")}


async def test_delete_sends_sigterm_then_sigkill_after_the_grace_period(store: ObjectStore, kubelet: Kubelet) -> None:
    stubborn = sh("main", "echo up; while true; do sleep 0.05; done")  # PID 1 without a handler ignores SIGTERM
    polite = sh("main", "trap 'echo bye; exit 0' TERM; echo up; while true; do sleep 0.05; done")
    store.create("pods", pod("stubborn", stubborn, terminationGracePeriodSeconds=2))
    store.create("pods", pod("polite", polite))
    for name in ("stubborn", "polite"):
        await wait_pod(store, name, phase("Running"))
        assert await first_line(kubelet, name, "main") == b"up\n"  # its trap is set
    started = time.monotonic()
    store.delete("pods", "default", "polite")
    await wait_gone(store, "polite")
    assert time.monotonic() - started < 2.0, "a pod that handles SIGTERM goes at once"
    started = time.monotonic()
    store.delete("pods", "default", "stubborn")
    await wait_gone(store, "stubborn")
    assert time.monotonic() - started >= 2.0, "SIGKILL only after the grace period"
    assert ("Normal", "Killing", "Stopping container main") in set(events(store, "stubborn"))


async def test_exec_reads_the_xcom_of_a_running_container(store: ObjectStore, kubelet: Kubelet) -> None:
    main = sh("base", "echo '{\"a\": 1}' > /airflow/xcom/return.json; echo written; sleep 30", volumeMounts=[XCOM])
    store.create(
        "pods", pod("sidecar", main, volumes=[{"name": "xcom", "emptyDir": {}}], terminationGracePeriodSeconds=0)
    )
    await wait_pod(store, "sidecar", phase("Running"))
    assert await first_line(kubelet, "sidecar", "base") == b"written\n"
    process = await kubelet.exec("default", "sidecar", "base", ["cat", "/airflow/xcom/return.json"], False, False)
    output = b"".join([c async for c in process.stdout])
    assert await process.wait() == 0 and json.loads(output) == {"a": 1}
    store.delete("pods", "default", "sidecar")
    await wait_gone(store, "sidecar")


async def test_failed_node_kills_its_containers(store: ObjectStore, kubelet: Kubelet) -> None:
    store.create("pods", pod("victim", sh("main", "sleep 30")))
    await wait_pod(store, "victim", phase("Running"))
    kubelet.fail_node("node-1")
    async with asyncio.timeout(5):
        assert [line async for line in kubelet.logs("default", "victim", "main", follow=True)] == []  # it ended
    store.create("pods", pod("later", sh("main", "true")))
    await wait_pod(store, "later", lambda p: bool(p["spec"].get("nodeName")))
    assert store.get("pods", "default", "later")["status"].get("startTime") is None, "a failed node runs nothing"
    assert ("Normal", "Started") not in {(t, r) for t, r, _ in events(store, "later")}


async def test_without_isolation_every_pod_says_so() -> None:
    store = ObjectStore()
    async with start(store, [node("plain-1")], {"isolation": False}) as (_, unisolated):
        store.create("pods", pod("plain", sh("main", "echo $HOSTNAME")))
        await wait_pod(store, "plain", phase("Succeeded"))
        assert await read_logs(unisolated, "plain", "main") == "plain\n"
        warning = ("Warning", "IsolationUnavailable", "isolation disabled in the runtime configuration")
        assert warning in events(store, "plain")


@pytest.fixture(params=["sigint-default", "sigint-ignored"])
def simulator_sigint(request: pytest.FixtureRequest) -> Iterator[None]:
    """The simulator's own SIGINT disposition: a shell starting it with `&` ignores SIGINT for it; its pods
    must start with the default anyway, as runc starts containers."""
    before = signal.getsignal(signal.SIGINT)
    if request.param == "sigint-ignored":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


@pytest.mark.usefixtures("simulator_sigint")
async def test_airflow_sidecar_pattern_exec_cat_then_sigint_to_pid_1(store: ObjectStore, kubelet: Kubelet) -> None:
    """KubernetesPodOperator's XCom sidecar: read the file through exec, then `kill -s SIGINT 1` in the sidecar."""
    base = sh("base", "echo '[1, 2]' > /airflow/xcom/return.json", volumeMounts=[XCOM])
    sidecar = sh(
        "airflow-xcom-sidecar", 'trap "exit 0" INT; echo ready; while true; do sleep 0.1; done;', volumeMounts=[XCOM]
    )
    store.create("pods", pod("kpo", base, sidecar, volumes=[{"name": "xcom", "emptyDir": {}}]))
    await wait_pod(
        store, "kpo", lambda p: "terminated" in (p["status"].get("containerStatuses") or [{"state": {}}])[0]["state"]
    )
    assert await first_line(kubelet, "kpo", "airflow-xcom-sidecar") == b"ready\n"
    cat = await kubelet.exec(
        "default", "kpo", "airflow-xcom-sidecar", ["cat", "/airflow/xcom/return.json"], False, False
    )
    assert b"".join([c async for c in cat.stdout]) == b"[1, 2]\n" and await cat.wait() == 0
    stop = await kubelet.exec("default", "kpo", "airflow-xcom-sidecar", ["kill", "-s", "SIGINT", "1"], False, False)
    assert await stop.wait() == 0
    done = await wait_pod(store, "kpo", phase("Succeeded", "Failed"))
    assert [s["state"]["terminated"]["exitCode"] for s in done["status"]["containerStatuses"]] == [0, 0]
    assert done["status"]["phase"] == "Succeeded"


async def test_eviction_fails_the_pod_with_reason_evicted(store: ObjectStore, kubelet: Kubelet) -> None:
    store.create("pods", pod("evictee", sh("main", "sleep 30")))
    await wait_pod(store, "evictee", phase("Running"))
    kubelet.evict("default", "evictee")
    done = await wait_pod(store, "evictee", lambda p: "terminated" in p["status"]["containerStatuses"][0]["state"])
    assert (done["status"]["phase"], done["status"]["reason"]) == ("Failed", "Evicted")
    assert done["status"]["message"] == "The node was low on resource: memory. "
    assert ("Warning", "Evicted", "The node was low on resource: memory. ") in events(store, "evictee")
    with pytest.raises(NotFound):
        kubelet.evict("default", "nobody")


async def test_run_as_user_writes_the_xcom_and_termination_message(store: ObjectStore, kubelet: Kubelet) -> None:
    main = sh(
        "main",
        "id -u; id -g; echo '{}' > /airflow/xcom/return.json; printf ok > /dev/termination-log",
        volumeMounts=[XCOM],
        securityContext={"runAsGroup": 2000},
    )
    spec = {"securityContext": {"runAsUser": 1000}, "volumes": [{"name": "xcom", "emptyDir": {}}]}
    store.create("pods", pod("nonroot", main, **spec))
    done = await wait_pod(store, "nonroot", phase("Succeeded", "Failed"))
    assert done["status"]["containerStatuses"][0]["state"]["terminated"]["message"] == "ok"
    assert await read_logs(kubelet, "nonroot", "main") == "1000\n2000\n"


async def test_termination_message_path_on_the_xcom_file(store: ObjectStore, kubelet: Kubelet) -> None:
    """The gateway's XCom mode auto: terminationMessagePath is the XCom file inside the xcom emptyDir."""
    script = "echo '{\"answer\": 42}' > /airflow/xcom/return.json; ls /airflow/xcom"
    main = sh("base", script, volumeMounts=[XCOM], terminationMessagePath="/airflow/xcom/return.json")
    store.create("pods", pod("auto", main, volumes=[{"name": "xcom", "emptyDir": {}}]))
    done = await wait_pod(store, "auto", phase("Succeeded", "Failed"))
    terminated = done["status"]["containerStatuses"][0]["state"]["terminated"]
    assert json.loads(terminated["message"]) == {"answer": 42}
    assert await read_logs(kubelet, "auto", "base") == "return.json\n"


async def test_python_command_works_as_in_a_python_image(store: ObjectStore, kubelet: Kubelet) -> None:
    """`python` (what DAGs write) exists in a python image; here it is linked to python3 in the container's layer."""
    main = {
        "name": "main",
        "image": "python:3.12",
        "command": ["python", "-c", "import sys; print(sys.version_info[0])"],
    }
    store.create("pods", pod("py", main))
    await wait_pod(store, "py", phase("Succeeded"))
    assert await read_logs(kubelet, "py", "main") == "3\n"
    assert not await asyncio.to_thread(os.path.exists, "/usr/local/bin/python")


async def test_a_container_killed_while_it_starts_does_not_outlive_the_kubelet() -> None:
    store = ObjectStore()
    async with asyncio.timeout(15):
        async with start(store, [node("quick-1")]) as (_, k):
            store.create("pods", pod("racer", sh("main", "trap '' TERM; sleep 30")))
            await wait_pod(store, "racer", lambda p: bool(p["status"].get("startTime")))  # its start is under way
            k.fail_node("quick-1")
    assert child_processes() == []
