"""Which database the store opens: the URL's driver checked, a password from a file, the URL as logs show it.

One async driver per backend (aiosqlite, asyncpg: docs/decisions/0020-postgres-driver.md); a URL naming
the backend alone (`postgresql://`, `sqlite://`) gets it. The password may come from a file (a mounted
Kubernetes Secret) instead of the URL. No message here ever contains the password: a URL is shown only
through `describe()`, and a URL that does not parse is not echoed at all.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
ALIASES = {"postgres": "postgresql"}  # the scheme Heroku and libpq also accept
SECRET_QUERY_KEYS = ("pass", "secret", "token", "key")
FORM = "driver://user@host/database, e.g. postgresql+asyncpg://podgate@db:5432/podgate"


def describe(url: URL | str) -> str:
    """The URL with its password masked (`***`), and password-like query parameters too (asyncpg takes
    `?password=`), for logs and messages."""
    parsed = make_url(url)
    query = {k: "***" if any(s in k.lower() for s in SECRET_QUERY_KEYS) else v for k, v in parsed.query.items()}
    return parsed.set(query=query).render_as_string(hide_password=True)


def database_url(url: str, *, password_file: Path | None = None) -> URL:
    """The URL to open: a known backend with our async driver, the password read from `password_file`
    when given. ValueError, without the URL's password, for anything else."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ValueError(f"the database URL is not a SQLAlchemy URL (expected {FORM})") from None
    parsed = parsed.set(drivername=_driver(parsed))
    if password_file is None:
        return parsed
    if parsed.password is not None:
        raise ValueError(
            f"the database password is given twice, in the URL ({describe(parsed)}) and in {password_file}: keep one"
        )
    return parsed.set(password=read_password(password_file))


def read_password(path: Path) -> str:
    """The first line of the file, without its line ending (a Secret's key often ends in a newline)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(
            f"cannot read the database password file {path}: {getattr(e, 'strerror', None) or e}"
        ) from None
    password = text.splitlines()[0] if text else ""
    if not password:
        raise ValueError(f"the database password file {path} is empty")
    return password


def _driver(url: URL) -> str:
    backend = ALIASES.get(url.get_backend_name(), url.get_backend_name())
    wanted = DRIVERS.get(backend)
    if wanted is None:
        raise ValueError(f"unsupported database {backend!r}: use sqlite or postgresql ({FORM})")
    driver = url.get_driver_name() if "+" in url.drivername else ""
    if driver and f"{backend}+{driver}" != wanted:
        raise ValueError(f"unsupported driver {driver!r} for {backend}: use {wanted}:// (or {backend}://)")
    return wanted
