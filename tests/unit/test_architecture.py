"""The layers' dependencies point inwards only: every import of every module, those
inside functions included, read with ast."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import usermgr

PACKAGE = Path(usermgr.__file__).parent
DRIVERS_AND_FRAMEWORKS = ("sqlite3", "psycopg2", "psycopg", "sqlalchemy", "sqlmodel", "typer", "click", "rich")
RULES = {
    "usermgr.domain": (*DRIVERS_AND_FRAMEWORKS, "usermgr.application", "usermgr.infrastructure", "usermgr.cli", "usermgr.bootstrap"),
    "usermgr.application": (*DRIVERS_AND_FRAMEWORKS, "usermgr.infrastructure", "usermgr.cli", "usermgr.bootstrap"),
    "usermgr.infrastructure": ("typer", "click", "rich", "usermgr.cli", "usermgr.bootstrap"),
    "usermgr.cli": ("usermgr.infrastructure", "sqlite3", "psycopg2", "sqlalchemy", "sqlmodel"),
}


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found.append((".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    return found


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: a relative import"
            names.add(node.module or "")
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def forbidden(module: str) -> tuple[str, ...]:
    return next((banned for layer, banned in RULES.items() if module == layer or module.startswith(layer + ".")), ())


@pytest.mark.parametrize(("module", "path"), modules(), ids=[m for m, _ in modules()])
def test_a_module_imports_nothing_from_an_outer_layer_or_a_framework_below_it(module: str, path: Path) -> None:
    banned = forbidden(module)
    wrong = sorted(name for name in imported(path) if any(name == b or name.startswith(b + ".") for b in banned))
    assert wrong == [], f"{module} imports {wrong}"


def test_the_rules_cover_every_layer() -> None:
    layers = {m.split(".")[1] for m, _ in modules() if m.count(".") >= 1}
    assert {name.split(".")[1] for name in RULES} <= layers
    assert any(forbidden(m) for m, _ in modules())
