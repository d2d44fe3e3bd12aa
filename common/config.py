"""TOML configuration validated by pydantic, with environment overrides.

Every service loads its config through :func:`load`: the file is read, then
variables ``<PREFIX>__SECTION__FIELD=value`` override single fields (for
containers and tests), then the whole is validated. Any problem becomes one
``ConfigError`` whose message names each bad field and how to fix it.
"""

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, ValidationInfo

from common.errors import ConfigError

C = TypeVar("C", bound=BaseModel)


class Section(BaseModel):
    """Base for config sections: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def _relative_to_config(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    value = value.expanduser()
    return value if value.is_absolute() or base is None else Path(base) / value


ConfigPath = Annotated[Path, AfterValidator(_relative_to_config)]
"""A path in a config file; relative paths are taken from the config file's folder."""


def _env_overrides(prefix: str, environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    head = prefix.upper() + "__"
    for name, value in environ.items():
        if not name.startswith(head):
            continue
        path = [p.lower() for p in name[len(head) :].split("__") if p]
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        if path:
            node[path[-1]] = value
    return tree


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _describe(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """The description of the field at ``loc``, to tell the user what it is for."""
    current: Any = model
    info = None
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return ""
        info = fields[part]
        current = info.annotation
    return (info.description or "") if info else ""


def format_errors(model: type[BaseModel], exc: ValidationError, source: str) -> str:
    """One line per bad field: where, what is wrong, what the field is for."""
    lines = [f"{source}: {exc.error_count()} problem(s) in the configuration:"]
    for err in exc.errors():
        loc = tuple(err["loc"])
        where = ".".join(str(p) for p in loc) or "<top level>"
        if err["type"] == "extra_forbidden":
            msg = "unknown field: remove it or check its spelling"
        elif err["type"] == "missing":
            msg = "required field is missing: add it"
        else:
            msg = err["msg"]
        hint = _describe(model, loc)
        lines.append(f"  - {where}: {msg}" + (f" (expected: {hint})" if hint else ""))
    return "\n".join(lines)


def load(
    model: type[C],
    path: Path | None,
    env_prefix: str,
    environ: Mapping[str, str] | None = None,
) -> C:
    """Read ``path`` (TOML; optional), apply env overrides, validate into ``model``."""
    data: dict[str, Any] = {}
    source = str(path) if path else "(defaults)"
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"config file {path} not found: create it (see the README) or pass --config"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        except (PermissionError, IsADirectoryError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read it: {exc}") from None
    data = _merge(data, _env_overrides(env_prefix, os.environ if environ is None else environ))
    try:
        base_dir = path.resolve().parent if path is not None else Path.cwd()
        return model.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(format_errors(model, exc, source)) from None


def secret_path(name: str, fallback: Path) -> Path:
    """A secret file: from systemd's ``$CREDENTIALS_DIRECTORY`` when set, else ``fallback``."""
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds and (Path(creds) / name).exists():
        return Path(creds) / name
    return fallback
