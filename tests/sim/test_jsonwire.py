"""The simulator's JSON writer reads back as what json.dumps would have written, for every value it may meet."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.sim.jsonwire import dumps


@pytest.mark.parametrize(
    "value",
    [
        {"metadata": {"name": "p", "labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "args": []}]}},
        {"big": 2**70, "negative": -(2**70)},  # beyond orjson's 64 bits: json.dumps writes it
        {1: "int key", "nested": {2: [1.5, None, True]}},  # YAML bodies may have keys that are not strings
        {"text": "ünïcode ✓ \u2028 \"quoted\" \\ </script>"},
        {"float": 0.1, "exp": 1e300, "zero": 0.0},
        [],
    ],
)
def test_written_json_reads_back_as_json_dumps_would(value: Any) -> None:
    written = dumps(value)
    assert isinstance(written, bytes) and b"\n" not in written and b", " not in written
    assert json.loads(written) == json.loads(json.dumps(value))
