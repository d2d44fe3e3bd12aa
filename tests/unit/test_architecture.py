"""The rooms of ARCHITECTURE.md, checked by reading every module's imports.

Who may import whom is the table in docs/design.md ("Rooms"); imports inside
functions count too, for the rooms and for import cycles. The session core is
pure: importing it loads no storage, broker, key, web or model-runtime code.
"""

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOMS = ("common", "protocol", "hal", "models", "edge", "central", "provisioning")
MAY_IMPORT: dict[str, set[str]] = {
    "common": set(),
    "protocol": {"common"},
    "hal": {"common"},
    "models": {"common", "protocol"},
    "edge": {"common", "protocol", "hal", "models"},
    "central": {"common", "protocol"},
    "provisioning": {"common", "protocol"},
}


def _modules() -> Iterator[tuple[str, Path]]:
    for room in ROOMS:
        for path in sorted((REPO / room).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield name, path


MODULES = dict(_modules())


def _imports(name: str, path: Path) -> set[str]:
    """The lifecert modules ``name`` imports (``from a import b`` counts ``a.b`` if a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


@pytest.mark.parametrize("room", ROOMS)
def test_rooms_import_only_what_the_table_allows(room: str) -> None:
    wrong = sorted(
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if name.split(".")[0] == room
        for target in targets
        if (other := target.split(".")[0]) != room and other not in MAY_IMPORT[room]
    )
    assert not wrong, "\n".join(wrong)


def test_the_reader_sees_imports_of_every_form() -> None:
    """Control: a top-level ``from a import b``, ``from a.b import c`` and a function's import."""
    assert {"protocol.messages", "common.errors"} <= GRAPH["central.certification.ingest"]
    assert "protocol.topics" in GRAPH["protocol.messages"]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


CYCLES = _cycles(GRAPH)


@pytest.mark.parametrize("room", ROOMS)
def test_no_import_cycles_not_even_inside_functions(room: str) -> None:
    found = [c for c in CYCLES if any(m.split(".")[0] == room for m in c)]
    assert not found, "\n".join(" <-> ".join(c) for c in found)


def test_the_cycle_finder_finds_a_cycle() -> None:
    """Control: the search reports a loop it is given (and nothing for a chain)."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


# -- the pure session core ---------------------------------------------------------------

#: What importing the session core must not load: storage, broker, keys, web, model runtime.
IMPURE = ("sqlite3", "sqlite_utils", "paho", "cryptography", "joserfc", "uvicorn", "starlette",
          "ai_edge_litert", "tflite_runtime")  # fmt: skip


def _loaded_by(module: str) -> list[str]:
    """Every module a fresh interpreter holds after ``import module``."""
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    return list(json.loads(out.stdout))


def test_the_session_core_is_pure() -> None:
    """``edge.session.core`` runs on ports alone: a remote terminal or a test reuses it with
    other adapters. Nothing of edge outside the session, no model, no I/O library comes in."""
    loaded = _loaded_by("edge.session.core")
    assert "edge.session.core" in loaded
    impure = [
        m
        for m in loaded
        if m.split(".")[0] in IMPURE
        or (m.startswith("edge.") and not m.startswith("edge.session"))
        or m.split(".")[0] == "models"
    ]
    assert not impure, impure


def test_the_purity_check_sees_an_adapter() -> None:
    """Control: the recorder, an adapter, brings in keys, the outbox and SQLite."""
    loaded = _loaded_by("edge.adapters.recorder")
    assert {"edge.adapters.keys", "edge.adapters.outbox", "sqlite3", "cryptography"} <= set(loaded)


# -- central's own rooms ----------------------------------------------------------------

CENTRAL_ROOMS: dict[str, set[str]] = {
    "store": set(),
    "certification": {"store", "staff"},
    "people": {"store", "certification"},
    "payments": {"store", "certification", "people"},
    "fraud": {"store"},
    "staff": {"store"},
    "proposals": {"store", "certification", "people", "payments", "staff"},
    "console": {
        "store",
        "certification",
        "people",
        "payments",
        "staff",
        "proposals",
        "fleet",
        "notify",
    },
    "fleet": {"store", "certification", "notify"},
    "notify": {"store", "certification", "people", "payments"},
    "channels": {"store", "certification", "people", "notify"},
}
"""Whom each room of ``central/`` may import (docs/design.md, "Central's rooms")."""
CENTRAL_TOP = {"__main__", "config", "bootstrap", "cli"}
"""central's modules outside the rooms: they assemble the rooms, and no room imports them."""


def _central_part(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "central" and len(parts) > 1 else None


def test_every_central_module_is_in_a_room_or_assembles_them() -> None:
    strays = sorted(
        name
        for name in MODULES
        if (part := _central_part(name)) is not None and part not in {*CENTRAL_ROOMS, *CENTRAL_TOP}
    )
    assert not strays, "put these in a room of central (or add the room to CENTRAL_ROOMS):\n" + (
        "\n".join(strays)
    )


@pytest.mark.parametrize("room", CENTRAL_ROOMS)
def test_central_rooms_import_only_what_their_table_allows(room: str) -> None:
    wrong = sorted(
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if _central_part(name) == room
        for target in targets
        if (other := _central_part(target)) not in (None, room) and other not in CENTRAL_ROOMS[room]
    )
    assert not wrong, "\n".join(wrong)
