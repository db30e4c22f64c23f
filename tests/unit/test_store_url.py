"""Which database URL the store accepts, the driver it picks, and that no message shows a password."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.store.url import database_url, describe


@pytest.mark.parametrize(
    ("given", "opened"),
    [
        ("postgresql+asyncpg://u:pw@db:5432/podgate", "postgresql+asyncpg://u:pw@db:5432/podgate"),
        ("postgresql://u@db/podgate", "postgresql+asyncpg://u@db/podgate"),
        ("postgres://u@db/podgate", "postgresql+asyncpg://u@db/podgate"),
        ("postgresql+asyncpg://u@/podgate?host=/run/pg", "postgresql+asyncpg://u@/podgate?host=%2Frun%2Fpg"),
        ("sqlite:///state/podgate.db", "sqlite+aiosqlite:///state/podgate.db"),
        ("sqlite+aiosqlite:////abs/podgate.db", "sqlite+aiosqlite:////abs/podgate.db"),
    ],
)
def test_each_backend_opens_with_our_async_driver(given: str, opened: str) -> None:
    assert database_url(given).render_as_string(hide_password=False) == opened


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            "postgresql+psycopg://u:hunter2@db/p",
            "unsupported driver 'psycopg' for postgresql: use postgresql+asyncpg://",
        ),
        ("postgresql+psycopg2://u:hunter2@db/p", "unsupported driver 'psycopg2'"),
        ("sqlite+pysqlite:///x.db", "unsupported driver 'pysqlite' for sqlite"),
        ("mysql+aiomysql://u:hunter2@db/p", "unsupported database 'mysql': use sqlite or postgresql"),
        ("u:hunter2@db/p", "not a SQLAlchemy URL"),
        ("postgresql://u:hunter2@db:notaport/p", "not a SQLAlchemy URL"),
    ],
)
def test_an_unsupported_url_is_refused_without_echoing_its_password(given: str, message: str) -> None:
    with pytest.raises(ValueError) as refused:
        database_url(given)
    assert message in str(refused.value)
    assert "hunter2" not in str(refused.value)


def test_describe_masks_the_password() -> None:
    assert describe("postgresql+asyncpg://u:hunter2@db/p") == "postgresql+asyncpg://u:***@db/p"
    assert describe("postgresql+asyncpg://u@db/p") == "postgresql+asyncpg://u@db/p"
    assert describe("postgresql+asyncpg://u@db/p?password=hunter2&sslkey=/k&host=/run") == (
        "postgresql+asyncpg://u@db/p?host=%2Frun&password=%2A%2A%2A&sslkey=%2A%2A%2A"
    )


@pytest.mark.parametrize(
    ("content", "password"),
    [("hunter2\n", "hunter2"), ("hunter2", "hunter2"), ("p@ss:w/rd\r\n", "p@ss:w/rd"), ("first\nsecond\n", "first")],
)
def test_the_password_file_fills_in_the_password(tmp_path: Path, content: str, password: str) -> None:
    secret = tmp_path / "password"
    secret.write_text(content)
    url = database_url("postgresql://podgate@db/podgate", password_file=secret)
    assert url.password == password
    assert password not in describe(url)


@pytest.mark.parametrize(
    ("url", "content", "message"),
    [
        ("postgresql://u:hunter2@db/p", "other", "given twice, in the URL (postgresql+asyncpg://u:***@db/p) and in"),
        ("postgresql://u@db/p", "", "is empty"),
        ("postgresql://u@db/p", None, "cannot read the database password file"),
    ],
)
def test_a_bad_password_file_is_refused_with_a_reason(
    tmp_path: Path, url: str, content: str | None, message: str
) -> None:
    secret = tmp_path / "password"
    if content is not None:
        secret.write_text(content)
    with pytest.raises(ValueError) as refused:
        database_url(url, password_file=secret)
    assert message in str(refused.value)
    assert "hunter2" not in str(refused.value) and str(secret) in str(refused.value)
