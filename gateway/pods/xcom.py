"""Reading a pod's XCom result (/airflow/xcom/return.json) without ever returning a wrong value.

Mode auto: the kubelet copies the file into the main container's termination message, at most 4096
bytes. Mode sidecar: the gateway reads the file with `exec cat` in the KubernetesPodOperator's sidecar.
As in KubernetesPodOperator an empty or missing file means no result (None).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

XCOM_DIR = "/airflow/xcom"
XCOM_PATH = f"{XCOM_DIR}/return.json"
TERMINATION_MESSAGE_LIMIT = 4096  # bytes the kubelet keeps of a termination message
DEFAULT_MAX_SIDECAR_BYTES = 3 * 2**20  # keeps a result inside a default 4 MiB gRPC message
KPO_EMPTY_MARKER = "__airflow_xcom_result_empty__"  # what KubernetesPodOperator's reader prints for no file


class XcomError(ValueError):
    """The pod's XCom result cannot be trusted; the message says what to change."""


def _checked_json(text: str, *, mode: str) -> str | None:
    stripped = text.strip()
    if not stripped or stripped == KPO_EMPTY_MARKER:
        return None
    try:
        json.loads(stripped)
    except json.JSONDecodeError as e:
        raise XcomError(
            f"the XCom result in {XCOM_PATH} is not valid JSON ({e.msg} at line {e.lineno} column {e.colno}, "
            f"xcom mode {mode}); write one JSON document to {XCOM_PATH}"
        ) from None
    return stripped


def from_termination_message(message: str | None) -> str | None:
    """Mode auto: the main container's `state.terminated.message`.

    Only for a container that exited 0: when a container fails to start or crashes, the runtime's error
    text takes the place of the termination message, and the failure (not an XCom error) is the result.
    """
    if message is None:
        return None
    size = len(message.encode())
    if size >= TERMINATION_MESSAGE_LIMIT:
        raise XcomError(
            f"the XCom result is {size} bytes or more and exceeds the {TERMINATION_MESSAGE_LIMIT}-byte limit of "
            "termination messages (the kubelet truncates it); use xcom mode sidecar for larger results"
        )
    return _checked_json(message, mode="auto")


def from_pod_status(pod_status: Mapping[str, Any], container: str) -> str | None:
    """Mode auto, from a raw Pod `status`: the named container's result, None unless it exited 0."""
    for status in pod_status.get("containerStatuses") or ():
        if status.get("name") == container:
            terminated = (status.get("state") or {}).get("terminated") or {}
            if terminated.get("exitCode") != 0:
                return None
            message = terminated.get("message")
            return from_termination_message(message if isinstance(message, str) else None)
    return None


def from_sidecar_output(output: bytes | str, *, max_bytes: int = DEFAULT_MAX_SIDECAR_BYTES) -> str | None:
    """Mode sidecar: what `cat` of the XCom file printed through exec."""
    raw = output if isinstance(output, bytes) else output.encode()
    if len(raw) > max_bytes:
        raise XcomError(f"the XCom result is {len(raw)} bytes, more than the gateway's limit of {max_bytes} bytes")
    try:
        text = raw.decode()
    except UnicodeDecodeError as e:
        raise XcomError(
            f"the XCom result in {XCOM_PATH} is not UTF-8 text (byte {e.start}, xcom mode sidecar)"
        ) from None
    return _checked_json(text, mode="sidecar")
