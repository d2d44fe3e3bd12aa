"""The rooms of ARCHITECTURE.md, checked by reading every module's imports.

Who may import whom is the table in docs/design.md ("Rooms"); imports inside
functions count too.
"""

import ast
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
