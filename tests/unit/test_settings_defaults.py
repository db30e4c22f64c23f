"""Every setting's default is written once, on its field; the parser and the wiring restate none.

Two checks: parsing an empty file gives exactly the dataclass defaults (the parser passes only keys it was
given), and an AST scan of the server finds no second literal default for a setting: no parameter or
dataclass field named like a setting (or like one with its unit, `gc_interval_seconds`) with a literal
default, and no `section.get("key", kind, <literal default>)` for a settings key outside the owners.
"""

from __future__ import annotations

import ast
from dataclasses import fields
from pathlib import Path

from gateway.settings import Settings, parse_settings
from gateway.settings.parsing import SECTIONS
from tests.conftest import ROOT

GATEWAY = ROOT / "gateway"
# Where the defaults live: the settings model and the values other layers own and the file exposes.
OWNERS = {
    GATEWAY / "settings" / "model.py",
    GATEWAY / "placement" / "scoring.py",  # PlacementPolicy: the placement section
    GATEWAY / "policy" / "limits.py",  # InputLimits: the limits section
    GATEWAY / "credentials" / "issuing.py",  # IssuePolicy: the kubeconfig section
    GATEWAY / "policy" / "tenants.py",  # a tenant's own grants (tenants[i].kubeconfig.max_ttl_seconds)
}
# Not the server: separate worlds and the client side, with settings of their own.
ELSEWHERE = ("sim", "client", "airflow", "commands", "_proto")
UNITS = ("", "_seconds", "_s")


def setting_names() -> set[str]:
    names = {f.name for cls in SECTIONS.values() for f in fields(cls)}
    names |= {f"{section}_{f.name}" for section, cls in SECTIONS.items() for f in fields(cls)}
    bare = {name.removesuffix("_seconds") for name in names}  # the same setting spelt without its unit
    return {name + unit for name in bare for unit in UNITS}


def literal(node: ast.expr | None) -> bool:
    """A value written out (5.0, "podgate", 7 * 86400, Path(".podgate"), ()), not a reference to one."""
    if node is None:
        return False
    if isinstance(node, ast.Constant):
        return node.value is not None and node.value != ""
    if isinstance(node, ast.BinOp | ast.UnaryOp):
        return all(literal(n) or isinstance(n, ast.Constant) for n in ast.iter_child_nodes(node) if isinstance(n, ast.expr))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Path":
        return all(isinstance(a, ast.Constant) for a in node.args)
    return False


def _parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[tuple[str, ast.expr]]:
    args = node.args
    positional = args.posonlyargs + args.args
    pairs = list(zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True))
    pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None]
    return [(a.arg, d) for a, d in pairs]


def _fields(node: ast.ClassDef) -> list[tuple[str, ast.expr | None]]:
    return [
        (item.target.id, item.value)
        for item in node.body
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
    ]


def _read_with_default(node: ast.Call) -> tuple[str, ast.expr] | None:
    """`x.get("key", kind, default)`: a parser reading a key with a default of its own."""
    if not (isinstance(node.func, ast.Attribute) and node.func.attr == "get" and len(node.args) == 3):
        return None
    key = node.args[0]
    return (key.value, node.args[2]) if isinstance(key, ast.Constant) and isinstance(key.value, str) else None


def second_defaults(path: Path, names: set[str]) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found += [f"{where}: parameter {n}" for n, d in _parameters(node) if n in names and literal(d)]
        elif isinstance(node, ast.ClassDef):
            found += [f"{where}: field {node.name}.{n}" for n, d in _fields(node) if n in names and literal(d)]
        elif isinstance(node, ast.Call) and (read := _read_with_default(node)):
            found += [f"{where}: .get({read[0]!r}, ..., default)"] if read[0] in names and literal(read[1]) else []
    return found


def server_modules() -> list[Path]:
    return [
        p for p in sorted(GATEWAY.rglob("*.py"))
        if p not in OWNERS and p.relative_to(GATEWAY).parts[0] not in ELSEWHERE
    ]  # fmt: skip


def test_no_setting_has_a_second_literal_default() -> None:
    names = setting_names()
    found = [line for path in server_modules() for line in second_defaults(path, names)]
    assert found == []


def test_the_scan_sees_the_old_duplicates() -> None:
    """The scan is not blind: the shapes the old configuration had are found."""
    sample = GATEWAY.parent / "build" / "settings-scan-sample.py"
    sample.parent.mkdir(exist_ok=True)
    sample.write_text(
        "from dataclasses import dataclass\n"
        "@dataclass\nclass DispatcherConfig:\n    gc_interval_seconds: float = 60.0\n    orphan_ttl: float = 600.0\n"
        "def registry(*, probe_interval: float = 5.0, gateway_id: str = 'podgate') -> None: ...\n"
        "def parse(s):\n    return s.get('listen', str, '127.0.0.1:50051')\n"
    )
    try:
        assert len(second_defaults(sample, setting_names())) == 5
    finally:
        sample.unlink()


def test_an_empty_file_gives_the_field_defaults() -> None:
    assert parse_settings(None, env={}) == Settings()
    assert parse_settings({}, env={}) == Settings()
