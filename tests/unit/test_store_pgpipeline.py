"""pgpipeline.plan: the order in which a batch's writes run has the same effects as the order submitted; and
notices: a batch's notifications packed into payloads PostgreSQL takes."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import bindparam, select

from gateway.store.pgpipeline import Keyed, Many, OneRow, Single, notices, plan

STATEMENTS = [select(bindparam(f"p{i}")) for i in range(3)]


def opaque(conn: Any) -> None:
    """An operation of no key (a lease renewal, a cluster's registration): it may touch any row."""


def key_of(operation: Any) -> str | None:
    return operation.key if isinstance(operation, (OneRow, Keyed)) else None


keys = st.integers(0, 3).map(lambda k: f"k{k}")
operations = st.lists(
    st.one_of(
        st.builds(lambda s, k: OneRow(STATEMENTS[s], {}, k), st.integers(0, 2), keys),
        st.builds(lambda k: Keyed(opaque, k), keys),
        st.just(opaque),
    ),
    max_size=40,
)


def executed(steps: list[Single | Many]) -> list[int]:
    return [i for step in steps for i in ((step.index,) if isinstance(step, Single) else step.indices)]


@given(operations)
def test_every_write_runs_once_a_keys_in_order_and_one_of_no_key_in_its_place(ops: list[Any]) -> None:
    steps = plan(ops)
    order = executed(steps)
    assert sorted(order) == list(range(len(ops)))
    position = {index: at for at, index in enumerate(order)}
    for i in range(len(ops)):
        for j in range(i + 1, len(ops)):
            first, later = key_of(ops[i]), key_of(ops[j])
            if first is None or later is None or first == later:
                assert position[i] < position[j], (i, j)
    for step in steps:
        if isinstance(step, Many):
            writes = [ops[i] for i in step.indices]
            assert {w.statement for w in writes} == {step.statement}
            assert len({w.key for w in writes}) == len(writes)  # one write of a key a pipeline
            assert list(step.indices) == sorted(step.indices)
        else:
            assert not isinstance(ops[step.index], OneRow)


def test_a_batch_runs_rank_by_rank_each_ranks_writes_of_a_statement_in_one_pipeline() -> None:
    a, b = STATEMENTS[:2]
    create_z = Keyed(opaque, "z")
    ops: list[Any] = [OneRow(a, {}, "x"), OneRow(b, {}, "y"), OneRow(a, {}, "y"), create_z, OneRow(a, {}, "x")]
    ops += [OneRow(a, {}, "z"), opaque, OneRow(a, {}, "x"), OneRow(b, {}, "w")]
    assert plan(ops) == [
        Single(3),  # z's creation, rank 1 with x's and y's first writes
        Many(a, (0,)),
        Many(b, (1,)),
        Many(a, (2, 4, 5)),  # rank 2: y's, x's and z's second writes
        Single(6),  # no key: after all before it
        Many(a, (7,)),
        Many(b, (8,)),
    ]


line_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), min_size=1, max_size=120)
lines_of_text = st.lists(line_text, max_size=60)


@given(lines_of_text, st.integers(480, 2000))
def test_a_batchs_notifications_go_in_order_in_as_few_payloads_as_fit(lines: list[str], limit: int) -> None:
    payloads = notices(lines, limit)
    assert [line for payload in payloads for line in payload.split("\n")] == lines
    assert all(len(payload.encode()) <= limit for payload in payloads)
    for payload, following in itertools.pairwise(payloads):  # each as full as the next line allows
        assert len(payload.encode()) + 1 + len(following.split("\n")[0].encode()) > limit


def test_a_notification_as_long_as_postgres_allows_goes_alone() -> None:
    assert notices(["1 r " + "x" * 7993, "2 r", "3 r"]) == ["1 r " + "x" * 7993, "2 r\n3 r"]
    assert notices([]) == []
