"""Typed reading of parsed YAML with every problem collected under its key path ("tenants[2].regions[0]").

A configuration is refused as a whole, listing each problem once, so an operator fixes a file in one
pass; unknown keys are problems too (a misspelt `namespace:` must not silently allow nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")
NO_TEXTS: tuple[str, ...] = ()


class ConfigError(ValueError):
    def __init__(self, problems: list[str], source: str = "") -> None:
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{len(problems)} configuration problem(s):\n  " + "\n  ".join(problems))
        self.problems = problems


@dataclass
class Problems:
    items: list[str] = field(default_factory=list)

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}" if path else message)

    def raise_if_any(self, source: str = "") -> None:
        if self.items:
            raise ConfigError(self.items, source)


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


@dataclass
class Section:
    """One mapping of the file; reads typed keys and reports unknown ones via `done()`."""

    raw: Mapping[str, Any]
    path: str
    problems: Problems
    _seen: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, value: Any, path: str, problems: Problems) -> Section:
        if value is None:
            return cls({}, path, problems)
        if not isinstance(value, Mapping):
            problems.add(path, f"must be a mapping, got {type(value).__name__}")
            return cls({}, path, problems)
        return cls(value, path, problems)

    def has(self, key: str) -> bool:
        return self.raw.get(key) is not None

    def get(self, key: str, kind: Callable[[Any, str, Problems], T | None], default: T) -> T:
        self._seen.add(key)
        value = self.raw.get(key)
        if value is None:
            return default
        parsed = kind(value, join(self.path, key), self.problems)
        return default if parsed is None else parsed

    def given(self, kinds: Mapping[str, Callable[[Any, str, Problems], Any]]) -> dict[str, Any]:
        """The keys of `kinds` that are set and parse, parsed: passed as keyword arguments, so a value
        left out takes its dataclass field's default, the only place that default is written."""
        out = {}
        for key, kind in kinds.items():
            value = self.raw_value(key)
            if value is not None and (parsed := kind(value, join(self.path, key), self.problems)) is not None:
                out[key] = parsed
        return out

    def raw_value(self, key: str) -> Any:
        self._seen.add(key)
        return self.raw.get(key)

    def section(self, key: str) -> Section:
        return Section.of(self.raw_value(key), join(self.path, key), self.problems)

    def done(self) -> None:
        for key in self.raw:
            if key not in self._seen:
                known = ", ".join(sorted(self._seen))
                self.problems.add(join(self.path, str(key)), f"unknown key (known here: {known})")


# --- kinds: (value, path, problems) -> parsed or None (problem recorded) --------------------


def text(value: Any, path: str, problems: Problems) -> str | None:
    if isinstance(value, str) and value.strip():
        return value
    problems.add(path, f"must be a non-empty string, got {value!r}")
    return None


def integer(value: Any, path: str, problems: Problems) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    problems.add(path, f"must be a non-negative integer, got {value!r}")
    return None


def number(value: Any, path: str, problems: Problems) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    if isinstance(value, str):
        try:
            parsed = float(value)
        except ValueError:
            pass
        else:
            if parsed >= 0:
                return parsed
    problems.add(path, f"must be a non-negative number, got {value!r}")
    return None


_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def boolean(value: Any, path: str, problems: Problems) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _BOOLS:
        return _BOOLS[value.lower()]
    problems.add(path, f"must be true or false, got {value!r}")
    return None


def texts(value: Any, path: str, problems: Problems) -> tuple[str, ...] | None:
    """A list of non-empty strings; a comma-separated string (environment overrides) is accepted too."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list):
        problems.add(path, f"must be a list of strings, got {type(value).__name__}")
        return None
    out = [text(v, join(path, i), problems) for i, v in enumerate(value)]
    return tuple(v for v in out if v is not None)


def one_of(*choices: str) -> Callable[[Any, str, Problems], str | None]:
    def kind(value: Any, path: str, problems: Problems) -> str | None:
        if value in choices:
            return str(value)
        problems.add(path, f"must be one of {', '.join(choices)}, got {value!r}")
        return None

    return kind
