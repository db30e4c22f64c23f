"""pgpipeline.plan: the order in which a batch's writes run has the same effects as the order submitted."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import bindparam, select

from gateway.store.pgpipeline import Many, OneRow, Single, plan

STATEMENTS = [select(bindparam(f"p{i}")) for i in range(3)]


def opaque(conn: Any) -> None:
    """An operation that is not one statement (a pod record's creation, a lease renewal)."""


operations = st.lists(
    st.one_of(
        st.builds(lambda s, k: OneRow(STATEMENTS[s], {}, f"k{k}"), st.integers(0, 2), st.integers(0, 3)),
        st.just(opaque),
    ),
    max_size=40,
)


def executed(steps: list[Single | Many]) -> list[int]:
    return [i for step in steps for i in ((step.index,) if isinstance(step, Single) else step.indices)]


@given(operations)
def test_every_write_runs_once_a_keys_in_order_and_others_in_their_place(ops: list[Any]) -> None:
    steps = plan(ops)
    order = executed(steps)
    assert sorted(order) == list(range(len(ops)))
    position = {index: at for at, index in enumerate(order)}
    for i, op in enumerate(ops):
        for j in range(i + 1, len(ops)):
            later = ops[j]
            same_key = isinstance(op, OneRow) and isinstance(later, OneRow) and op.key == later.key
            if same_key or not isinstance(op, OneRow) or not isinstance(later, OneRow):
                assert position[i] < position[j], (i, j)  # a key's writes, and anything around another operation
    for step in steps:
        if isinstance(step, Many):
            writes = [ops[i] for i in step.indices]
            assert {w.statement for w in writes} == {step.statement}
            assert len({w.key for w in writes}) == len(writes)  # one write of a key a pipeline
            assert list(step.indices) == sorted(step.indices)
        else:
            assert not isinstance(ops[step.index], OneRow)


def test_writes_between_other_operations_are_grouped_by_statement_and_rank() -> None:
    a, b = STATEMENTS[:2]
    ops: list[Any] = [OneRow(a, {}, "x"), OneRow(b, {}, "y"), OneRow(a, {}, "y"), OneRow(a, {}, "x"), opaque]
    ops += [OneRow(a, {}, "x"), OneRow(a, {}, "z")]
    assert plan(ops) == [Many(a, (0,)), Many(b, (1,)), Many(a, (2, 3)), Single(4), Many(a, (5, 6))]
