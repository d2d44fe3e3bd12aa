"""The documents against the code: commands shown exist, every command is shown, links resolve.

Reads README.md, BENCHMARKS.md and every ``docs/**/*.md``. A command line is a
``lifecert``, ``lifecert-central``, ``lifecert-edge``, ``lifecert-models`` or
``lifecert-emulator`` invocation that starts a code-block line or an inline code span
(or follows a shell operator or a ``$`` prompt); it is walked down its click command
tree, so an unknown command or an option the command does not take fails, naming the
file and line.
"""

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from central.cli import main as central_main
from edge import config as edge_config
from edge.cli import main as edge_main
from hal.emulators.cli import main as emulator_main
from models.cli import main as models_main
from provisioning.cli import main as fleet_main

REPO = Path(__file__).resolve().parents[2]
CLIS: dict[str, click.Command] = {
    "lifecert": fleet_main,
    "lifecert-central": central_main,
    "lifecert-edge": edge_main,
    "lifecert-models": models_main,
    "lifecert-emulator": emulator_main,
}
# A program in command position: at the start, after a shell operator or a `$ ` prompt,
# past any VAR=value assignments (not inside prose such as "(lifecert-central …)").
PROGRAM = re.compile(
    r"(?:^|(?<=[;&|])|(?<=\$ ))\s*(?:[A-Z_][A-Z0-9_]*=\S*\s+)*"
    r"(lifecert(?:-central|-edge|-models|-emulator)?)(?=\s|$)"
)
SHELL_STOP = re.compile(r"^(?:\||\|\||&&|&|;|>|>>|2>|<|#.*)$")
FENCE = re.compile(r"^```")
INLINE = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def documents() -> list[Path]:
    return [REPO / "README.md", REPO / "BENCHMARKS.md", *sorted((REPO / "docs").rglob("*.md"))]


@dataclass(frozen=True)
class Shown:
    """One piece of code shown in a document: a code-block line or an inline span."""

    path: Path
    line: int
    text: str

    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def code_shown(path: Path) -> Iterator[Shown]:
    """Code-block lines (continuations joined) and inline code spans, with line numbers."""
    in_block, pending, start = False, "", 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line.strip()):
            in_block = not in_block
            continue
        if in_block:
            if not pending:
                start = number
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1].strip() + " "
                continue
            yield Shown(path, start, pending + line.strip())
            pending = ""
        else:
            for match in INLINE.finditer(line):
                yield Shown(path, number, match.group(2))


def prose(path: Path) -> Iterator[tuple[int, str]]:
    """Lines outside code blocks, inline code removed (where links live)."""
    in_block = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line.strip()):
            in_block = not in_block
        elif not in_block:
            yield number, INLINE.sub("", line)


def _tokens(text: str) -> list[str]:
    try:
        return shlex.split(text, comments=False)
    except ValueError:  # an unbalanced quote in prose: split on blanks
        return text.split()


def _option_names(command: click.Command) -> dict[str, click.Parameter]:
    names: dict[str, click.Parameter] = {"--help": click.Option(["--help"], is_flag=True)}
    for param in command.params:
        if isinstance(param, click.Option):
            for name in (*param.opts, *param.secondary_opts):
                names[name] = param
    return names


def walk(program: str, tokens: list[str]) -> tuple[list[str], list[str]]:
    """Follow ``tokens`` down ``program``'s command tree.

    Returns the command paths reached (``"lifecert-central payments run"``) and the
    problems found (unknown command, unknown option).
    """
    command, path = CLIS[program], program
    reached, problems = [path], []
    values_left = 0
    for raw in tokens:
        token = raw.strip("[]")
        if SHELL_STOP.match(raw) or token in {"…", "...", ""}:
            break
        if values_left:
            values_left -= 1
            continue
        if token.startswith("-") and len(token) > 1:
            name = token.split("=", 1)[0]
            param = _option_names(command).get(name)
            if param is None:
                problems.append(f"`{path}` has no option {name}")
                continue
            takes_value = isinstance(param, click.Option) and not (
                param.is_flag or param.count or name in param.secondary_opts
            )
            if takes_value and "=" not in token:
                values_left = param.nargs
            continue
        if isinstance(command, click.Group):
            sub = command.commands.get(token)
            if sub is None:
                problems.append(f"`{path}` has no command {token!r}")
                break
            command, path = sub, f"{path} {token}"
            reached.append(path)
        # else: an argument of a leaf command; options may still follow
    return reached, problems


def invocations() -> Iterator[tuple[Shown, str, list[str]]]:
    """Every program invocation shown: (where, program, the tokens after it)."""
    for doc in documents():
        for shown in code_shown(doc):
            for match in PROGRAM.finditer(shown.text):
                rest = shown.text[match.end() :]
                yield shown, match.group(1), _tokens(rest)


def all_commands(command: click.Command, path: str) -> Iterator[str]:
    """Every command path of a CLI whose commands have no subcommands."""
    if isinstance(command, click.Group) and command.commands:
        for name, sub in command.commands.items():
            yield from all_commands(sub, f"{path} {name}")
    else:
        yield path


def test_the_walker_catches_unknown_commands_and_options() -> None:
    good = walk("lifecert-central", _tokens("--config c.toml payments run 2026-04 --json"))
    assert good == (
        ["lifecert-central", "lifecert-central payments", "lifecert-central payments run"],
        [],
    )
    assert walk("lifecert", _tokens("fleet enrol t-1 --dir f --tar"))[1] == []
    assert "no command 'launch'" in walk("lifecert-central", ["payments", "launch"])[1][0]
    assert "no option --colour" in walk("lifecert", _tokens("fleet list --colour"))[1][0]
    # an option belongs to the command it follows, not to its group
    assert walk("lifecert-central", _tokens("run --config c.toml"))[1]
    # a value that looks like a command is not read as one
    assert walk("lifecert-edge", _tokens("--config run outbox --json"))[1] == []


def test_the_reader_finds_blocks_spans_and_continuations(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text(
        "Run `lifecert fleet list` first.\n\n```bash\nlifecert-models build \\\n"
        "    --out var/models\n```\n",
        encoding="utf-8",
    )
    shown = [(s.line, s.text) for s in code_shown(doc)]
    assert shown == [
        (1, "lifecert fleet list"),
        (4, "lifecert-models build --out var/models"),
    ]


def test_every_command_line_shown_exists() -> None:
    problems = []
    count = 0
    for shown, program, tokens in invocations():
        count += 1
        problems += [f"{shown.where()}: {p}" for p in walk(program, tokens)[1]]
    assert count > 100, f"only {count} command lines found in the documents"
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("program", sorted(CLIS))
def test_every_command_is_documented(program: str) -> None:
    shown: set[str] = set()
    for _, prog, tokens in invocations():
        if prog == program:
            shown.update(walk(prog, tokens)[0])
    missing = sorted(set(all_commands(CLIS[program], program)) - shown)
    assert not missing, f"commands shown in no document: {missing}"


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file (inline code keeps its text)."""
    anchors, seen = set(), dict[str, int]()
    in_block = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line.strip()):
            in_block = not in_block
        if in_block or not line.startswith("#"):
            continue
        slug = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def test_relative_links_resolve() -> None:
    problems = []
    for doc in documents():
        for number, line in prose(doc):
            for target in LINK.findall(line):
                if re.match(r"^[a-z]+:", target):
                    continue
                file_part, _, anchor = target.partition("#")
                dest = (doc.parent / file_part).resolve() if file_part else doc
                if not dest.exists():
                    problems.append(f"{doc.relative_to(REPO)}:{number}: {target} does not exist")
                elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                    problems.append(f"{doc.relative_to(REPO)}:{number}: no heading #{anchor}")
    assert not problems, "\n".join(problems)


TEST_REF = re.compile(r"(?<![\w/])(?:tests/[\w/*.-]+|test_[\w*]+)\.py(?:::\w+)?")


def test_test_files_named_exist() -> None:
    """Test files shown in the docs (``tests/unit/test_x.py``, globs, or a bare
    ``test_x.py``) exist, and so do the tests they name: ``test_x.py::test_name``, and a
    bare ``test_name`` span after it on the same line (the threat model's tables)."""
    problems = []
    for doc in documents():
        files: list[Path] = []
        line = 0
        for shown in code_shown(doc):
            if shown.line != line:
                files, line = [], shown.line
            named = re.fullmatch(r"test_\w+", shown.text)
            if named and files and not any(f"def {shown.text}(" in f.read_text() for f in files):
                problems.append(f"{shown.where()}: {shown.text}: no such test in {files}")
            for ref in TEST_REF.findall(shown.text):
                file_part, _, name = ref.partition("::")
                pattern = file_part if "/" in file_part else f"tests/**/{file_part}"
                files = sorted(REPO.glob(pattern))
                if not files:
                    problems.append(f"{shown.where()}: {ref}: no such file")
                elif name and not any(f"def {name}(" in f.read_text() for f in files):
                    problems.append(f"{shown.where()}: {ref}: no such test")
    assert not problems, "\n".join(problems)


def test_edge_config_is_documented_for_operators() -> None:
    text = (REPO / "docs" / "operators.md").read_text(encoding="utf-8")
    for field in edge_config.EdgeConfig.model_fields:
        assert field in text, f"edge.toml key {field!r} is not in docs/operators.md"
    assert edge_config.DB_NAME in text
