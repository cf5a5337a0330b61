"""The core imports nothing of aiohttp's server side (import-linter cannot name parts of an
outside package, so this reads the imports itself)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gateway

CORE = ("domain", "scanners", "engine", "report", "config", "identity")
SERVER_SIDE = ("aiohttp.web", "aiohttp.abc", "aiohttp.typedefs")


def server_side_imports(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if not node.module.startswith(SERVER_SIDE):
                names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found += [n for n in names if n.startswith(SERVER_SIDE)]
    return found


def test_the_reader_finds_each_way_of_importing_the_server_side() -> None:
    source = (
        "import aiohttp.web\nfrom aiohttp import web\nfrom aiohttp.abc import X\nimport aiohttp\n"
    )
    assert server_side_imports(source) == ["aiohttp.web", "aiohttp.web", "aiohttp.abc"]


@pytest.mark.parametrize("package", CORE)
def test_the_core_imports_nothing_of_aiohttps_server_side(package: str) -> None:
    root = Path(gateway.__file__).parent / package
    offenders = {
        str(path.relative_to(root.parent)): names
        for path in sorted(root.rglob("*.py"))
        if (names := server_side_imports(path.read_text()))
    }
    assert offenders == {}
