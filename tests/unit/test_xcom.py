"""Reading XCom results: auto (termination message) and sidecar (exec cat) modes."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.pods.xcom import (
    TERMINATION_MESSAGE_LIMIT,
    XcomError,
    from_pod_status,
    from_sidecar_output,
    from_termination_message,
)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (None, None),
        ("", None),
        ("  \n", None),
        ('{"v": 42}', '{"v": 42}'),
        ('{"v": 42}\n', '{"v": 42}'),
        ("42", "42"),
        ("null", "null"),
        ('"text"', '"text"'),
        ("[1, 2, 3]", "[1, 2, 3]"),
        ('{"é": "ü"}', '{"é": "ü"}'),
        (
            '"' + "a" * (TERMINATION_MESSAGE_LIMIT - 3) + '"',
            '"' + "a" * (TERMINATION_MESSAGE_LIMIT - 3) + '"',
        ),
    ],
)
def test_auto_mode_reads_the_termination_message(message: str | None, expected: str | None) -> None:
    assert from_termination_message(message) == expected


@pytest.mark.parametrize(
    ("message", "fragment"),
    [
        (
            "{not json",
            "is not valid JSON (Expecting property name enclosed in double quotes at line 1 column 2, xcom mode auto)",
        ),
        ("42 43", "is not valid JSON (Extra data"),
        ("a" * TERMINATION_MESSAGE_LIMIT, f"exceeds the {TERMINATION_MESSAGE_LIMIT}-byte limit"),
        ('"' + "a" * (TERMINATION_MESSAGE_LIMIT - 2) + '"', "use xcom mode sidecar"),
        ('{"v": "' + "é" * 2100 + '"}', "use xcom mode sidecar"),
        ("[" + "1," * 3000, "use xcom mode sidecar"),
    ],
)
def test_auto_mode_never_returns_a_wrong_value(message: str, fragment: str) -> None:
    with pytest.raises(XcomError) as caught:
        from_termination_message(message)
    assert fragment in str(caught.value)


def status(*containers: dict[str, Any]) -> dict[str, Any]:
    return {"phase": "Succeeded", "containerStatuses": list(containers)}


def terminated(name: str, message: Any = None, exit_code: int = 0) -> dict[str, Any]:
    term: dict[str, Any] = {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error"}
    if message is not None:
        term["message"] = message
    return {"name": name, "state": {"terminated": term}}


@pytest.mark.parametrize(
    ("pod_status", "expected"),
    [
        (status(terminated("main", '{"a": 1}')), '{"a": 1}'),
        (status(terminated("other", '{"b": 2}'), terminated("main", '{"a": 1}')), '{"a": 1}'),
        (status(terminated("main")), None),
        (status(terminated("other", "{}")), None),
        (status({"name": "main", "state": {"running": {}}}), None),
        ({}, None),
        (status(terminated("main", 42)), None),
        # a failed container's message is the runtime's error text, never an XCom result
        (status(terminated("main", 'exec: "python": executable file not found in $PATH', exit_code=128)), None),
        (status(terminated("main", '{"partial": 1}', exit_code=1)), None),
    ],
)
def test_auto_mode_from_pod_status(pod_status: dict[str, Any], expected: str | None) -> None:
    assert from_pod_status(pod_status, "main") == expected


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (b"", None),
        ("", None),
        (b"\n", None),
        (b"__airflow_xcom_result_empty__\n", None),
        (b'{"v": 42}', '{"v": 42}'),
        ('{"v": 42}\n', '{"v": 42}'),
        (b'{"big": "' + b"x" * 100_000 + b'"}', '{"big": "' + "x" * 100_000 + '"}'),
    ],
)
def test_sidecar_mode_reads_exec_output(output: bytes | str, expected: str | None) -> None:
    assert from_sidecar_output(output) == expected


@pytest.mark.parametrize(
    ("output", "kwargs", "fragment"),
    [
        (
            b"{broken",
            {},
            "is not valid JSON (Expecting property name enclosed in double quotes at line 1 column 2, xcom mode sidecar)",
        ),
        (b"\xff\xfe", {}, "is not UTF-8 text (byte 0, xcom mode sidecar)"),
        (b'"' + b"x" * 200 + b'"', {"max_bytes": 100}, "is 202 bytes, more than the gateway's limit of 100 bytes"),
    ],
)
def test_sidecar_mode_errors(output: bytes, kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(XcomError) as caught:
        from_sidecar_output(output, **kwargs)
    assert fragment in str(caught.value)
