"""Load ``retail-etl.yaml``: YAML, then ``RETAIL_ETL__SECTION__KEY`` environment overrides, then validation.

Every error names the file, the line and the key, and says what to write instead.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from retail_etl.config.model import Config
from retail_etl.errors import ConfigError

CONFIG_FILE = "retail-etl.yaml"
ENV_PREFIX = "RETAIL_ETL__"


def find_config(start: Path | str = ".") -> Path:
    """The config file in ``start`` or its nearest parent folder."""
    here = Path(start).resolve()
    if here.is_file():
        return here
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"no {CONFIG_FILE} found in {here} or its parents",
        hint="run `retail-etl init DIR` to create a project, or pass --config PATH",
    )


def load_config(path: Path | str | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment, validate and semantically check a configuration."""
    from retail_etl.config.checks import check_config

    file = find_config(path or ".")
    text = file.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark else str(file)
        raise ConfigError(f"not valid YAML: {getattr(exc, 'problem', exc)}", location=where) from None
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping of sections (lake, engine, sources)", location=str(file))
    lines = _key_lines(node)
    _apply_env(data, os.environ if env is None else env)
    try:
        config = Config.model_validate({**data, "project_dir": file.parent})
    except ValidationError as exc:
        raise _config_error(exc, file, lines) from None
    check_config(config, file, lines)
    return config


def _key_lines(node: yaml.Node | None, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], int]:
    """Map each key path in the YAML document to its 1-based line."""
    out: dict[tuple[str, ...], int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, str(key.value))
            out[sub] = key.start_mark.line + 1
            out.update(_key_lines(value, sub))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            sub = (*path, str(i))
            out[sub] = item.start_mark.line + 1
            out.update(_key_lines(item, sub))
    return out


def locate(file: Path, lines: Mapping[tuple[str, ...], int], path: tuple[str, ...]) -> str:
    """``file:line: a.b.c`` for the deepest part of ``path`` present in the file."""
    for depth in range(len(path), 0, -1):
        line = lines.get(path[:depth])
        if line is not None:
            return f"{file}:{line}: {'.'.join(path)}"
    return f"{file}: {'.'.join(path)}" if path else str(file)


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> None:
    """``RETAIL_ETL__LAKE__ROOT=/data/lake`` sets ``lake.root``; values are parsed as YAML scalars."""
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__") if k]
        if not keys:
            continue
        target = data
        for key in keys[:-1]:
            nxt = target.get(key)
            if not isinstance(nxt, dict):
                nxt = target[key] = {}
            target = nxt
        target[keys[-1]] = yaml.safe_load(raw) if raw.strip() else raw


def _config_error(exc: ValidationError, file: Path, lines: Mapping[tuple[str, ...], int]) -> ConfigError:
    problems = []
    for err in exc.errors():
        path = tuple(str(p) for p in err["loc"] if not str(p).startswith(("function-after", "union[")))
        path = tuple(p for p in path if p not in ("str", "ColumnSpec", "RuleSpec"))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(path[:-1])
            close = difflib.get_close_matches(path[-1], allowed, n=1)
            msg = f"unknown key {path[-1]!r}" + (f"; did you mean {close[0]!r}?" if close else "")
            if allowed:
                msg += f" (allowed here: {', '.join(allowed)})"
        elif err["type"] == "missing":
            msg = f"required key {path[-1]!r} is missing"
        problems.append(f"{locate(file, lines, path)}: {msg}")
    first, *rest = problems
    more = "".join(f"\n{p}" for p in rest)
    return ConfigError(first + more, hint="see the commented example that `retail-etl init` writes")


def _allowed_keys(path: tuple[str, ...]) -> list[str]:
    """The keys the schema accepts at ``path`` (dict levels such as a source name are skipped)."""
    model: Any = Config
    for part in path:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        field = model.model_fields.get(part)
        if field is None:
            continue  # a free-form key such as a source name
        model = _model_of(field.annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return sorted(k for k, f in model.model_fields.items() if not f.exclude)
    return []


def _model_of(annotation: Any) -> Any:
    """The pydantic model inside an annotation such as ``dict[str, SourceConfig]`` or ``X | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
