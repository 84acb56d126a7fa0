"""Load ``retail-etl.yaml``: YAML, then ``RETAIL_ETL__SECTION__KEY`` environment overrides, then validation.

Every error names the file, the line and the key, and says what to write instead.
"""

from __future__ import annotations

import difflib
import json
import os
import types
import typing
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
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"no {CONFIG_FILE} found in {here} or its parents",
        hint="run `retail-etl init DIR` to create a project, or pass --config PATH",
    )


def config_file(path: Path | str | None) -> Path:
    """The file ``--config`` names (a file, or a folder holding ``retail-etl.yaml``), never one found
    elsewhere; without ``path``, the one in the current folder or its nearest parent."""
    if path is None:
        return find_config(".")
    given = Path(path)
    if given.is_dir():
        given = given / CONFIG_FILE
    if not given.is_file():
        raise ConfigError(
            f"configuration file {given} does not exist",
            hint="check the path given to --config, or run `retail-etl init DIR` to create a project",
        )
    return given.resolve()


def load_config(path: Path | str | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment, validate and semantically check a configuration."""
    from retail_etl.config.checks import check_config

    file = config_file(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration: {exc.strerror}", location=str(file),
                          hint="check the file's permissions") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", location=str(file),
                          hint="save the configuration as UTF-8") from None
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
    overridden = _apply_env(data, os.environ if env is None else env)
    try:
        config = Config.model_validate({**data, "project_dir": file.parent})
    except ValidationError as exc:
        raise _config_error(exc, file, lines, overridden) from None
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


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """``RETAIL_ETL__LAKE__ROOT=/data/lake`` sets ``lake.root``; returns the key paths set, each with
    its variable's name.

    Values stay strings: pydantic converts them to the key's declared type (``"4"`` for an int,
    ``"true"`` for a bool), so ``,`` ``'`` ``#`` or ``{`` are delimiters, never YAML. A key declared as a
    list or mapping takes JSON (``["a", "b"]``).
    """
    overridden: dict[tuple[str, ...], str] = {}
    for name, raw in sorted(env.items()):
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
        target[keys[-1]] = _env_value(name, raw, tuple(keys))
        overridden[tuple(keys)] = name
    return overridden


def _env_value(name: str, raw: str, path: tuple[str, ...]) -> Any:
    if not _is_container(_annotation_at(path)):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{'.'.join(path)} takes a list or mapping as JSON: {exc.msg}", location=name,
                          hint=f'e.g. {name}=\'["a", "b"]\'') from None


def _annotation_at(path: tuple[str, ...]) -> Any:
    """The declared type of the key at ``path``, or None if the schema has no such key."""
    annotation: Any = Config
    for part in path:
        annotation = _without_none(annotation)
        if typing.get_origin(annotation) in (dict, Mapping):
            annotation = typing.get_args(annotation)[1]  # ``part`` is a name, e.g. a source's
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel) and part in annotation.model_fields:
            annotation = annotation.model_fields[part].annotation
        else:
            return None
    return annotation


def _without_none(annotation: Any) -> Any:
    """``X`` for ``X | None``; any other annotation unchanged."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _is_container(annotation: Any) -> bool:
    """Whether a value of this type is a list, tuple, mapping or model (a string is not)."""
    if annotation is None:
        return False
    if isinstance(annotation, type):
        return issubclass(annotation, BaseModel | dict | list | tuple | set | frozenset)
    origin = typing.get_origin(annotation)
    if origin in (dict, list, tuple, set, frozenset, Mapping):
        return True
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return bool(args) and all(_is_container(a) for a in args)
    return False


def _config_error(
    exc: ValidationError, file: Path, lines: Mapping[tuple[str, ...], int],
    overridden: Mapping[tuple[str, ...], str] | None = None,
) -> ConfigError:
    problems = []
    for err in exc.errors():
        path = tuple(str(p) for p in err["loc"] if not str(p).startswith(("function-after", "union[")))
        path = tuple(p for p in path if p not in ("str", "ColumnSpec", "RuleSpec"))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(path[:-1])
            close = difflib.get_close_matches(path[-1], allowed, n=1)
            msg = f"unknown key {path[-1]!r}" + (f"; did you mean {close[0]!r}?" if close else "")
            if allowed:
                msg += f" (allowed here: {', '.join(allowed)})"
        elif err["type"] == "missing":
            msg = f"required key {path[-1]!r} is missing"
        env_var = next((v for k, v in (overridden or {}).items() if path[: len(k)] == k), None)
        where = f"{env_var} (environment): {'.'.join(path)}" if env_var else locate(file, lines, path)
        problems.append(f"{where}: {msg}")
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
