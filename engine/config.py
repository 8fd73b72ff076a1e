"""Run configuration: shipped TOML defaults, user overrides, validation with named errors.

The defaults file is the one place every tunable lives. Its comments are parsed too: the
comment line above a key is that key's description, and a trailing ``{a|b}`` or ``(>= x)``
becomes part of the JSON Schema the merged config is validated against. So a new setting is
one commented line in ``defaults.toml``, nothing else.

A trailing ``(path)`` marks a file or folder, so the config works from any folder: a relative
path in a config file is taken from that file's folder, and a shipped default from the project
(:data:`PROJECT`, where the demo ``data/`` lives). ``(path, default in the working directory)``
keeps the shipped default where the command runs (the runs folder); ``(path or name)`` is
resolved only when the path exists (else it is a name, such as a hub id). ``--set`` values are
typed at the working directory, so they stay relative to it.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import tomli_w

DEFAULTS_PATH = Path(__file__).with_name("defaults.toml")
#: The folder the shipped defaults' relative paths (data/, data/ruff.toml...) are taken from.
PROJECT = Path(__file__).resolve().parents[1]
#: First line of a run's resolved config.toml (see :func:`dumps`).
RESOLVED_HEADER = "# Resolved web4tui configuration of this run (written before any work)."

_ENUM = re.compile(r"\{([^{}]+)\}\s*$")
_BOUND = re.compile(r"\((>=|>)\s*([-+0-9.eE]+)\)\s*$")
_KEY = re.compile(r"^([A-Za-z0-9_]+)\s*=")
_SECTION = re.compile(r"^\[([A-Za-z0-9_.]+)\]\s*$")
_PATH = re.compile(r"\(path(, default in the working directory| or name)?\)\s*$")
#: How each ``(path ...)`` tag resolves: "project" (default from the project), "cwd" (default
#: left in the working directory), "existing" (only a path that exists is resolved).
_PATH_KINDS = {None: "project", ", default in the working directory": "cwd",
               " or name": "existing"}


class ConfigError(ValueError):
    """A user mistake in a config file or --set: the message names the key and what to do."""


@dataclass(frozen=True)
class Setting:
    """One documented key of the config."""

    section: str
    key: str
    default: Any
    doc: str
    enum: tuple[str, ...] = ()
    bound: tuple[str, float] | None = None
    path_kind: str = ""  # "" (not a path), or how a relative value resolves (_PATH_KINDS)

    @property
    def path(self) -> str:
        return f"{self.section}.{self.key}"


_Doc = tuple[str, tuple[str, ...], tuple[str, float] | None, str]


def _parse_docs(text: str) -> dict[str, _Doc]:
    docs: dict[str, _Doc] = {}
    section, comment = "", ""
    for line in text.splitlines():
        stripped = line.strip()
        if m := _SECTION.match(stripped):
            section, comment = m.group(1), ""
        elif stripped.startswith("#"):
            comment = stripped.lstrip("#").strip()
        elif (m := _KEY.match(stripped)) and section:
            enum: tuple[str, ...] = ()
            bound = None
            if e := _ENUM.search(comment):
                enum = tuple(v.strip() for v in e.group(1).split("|"))
            if b := _BOUND.search(comment):
                bound = (b.group(1), float(b.group(2)))
            p = _PATH.search(comment)
            docs[f"{section}.{m.group(1)}"] = (comment, enum, bound,
                                               _PATH_KINDS[p.group(1)] if p else "")
            comment = ""
        elif not stripped:
            comment = ""
    return docs


def settings() -> list[Setting]:
    """Every documented setting, in file order."""
    text = DEFAULTS_PATH.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    docs = _parse_docs(text)
    out = []
    for section, values in data.items():
        for key, default in values.items():
            doc, enum, bound, kind = docs.get(f"{section}.{key}", ("", (), None, ""))
            out.append(Setting(section, key, default, doc, enum, bound, kind))
    return out


def defaults() -> dict[str, Any]:
    """The shipped defaults, their paths taken from the project (see the module docstring)."""
    cfg = tomllib.loads(DEFAULTS_PATH.read_text(encoding="utf-8"))
    resolve_paths(cfg, PROJECT, shipped=True)
    return cfg


def resolve_paths(cfg: dict[str, Any], base: Path, *, shipped: bool = False) -> None:
    """Take the relative paths of ``cfg`` (defaults or one config file) from ``base``, in
    place; values of the wrong type are left for validation to name."""
    for s in settings():
        sec = cfg.get(s.section)
        if not s.path_kind or not isinstance(sec, dict) or s.key not in sec \
                or (shipped and s.path_kind == "cwd"):
            continue
        value = sec[s.key]
        if isinstance(value, list):
            sec[s.key] = [_resolved(v, base, s.path_kind) for v in value]
        else:
            sec[s.key] = _resolved(value, base, s.path_kind)


def _resolved(value: Any, base: Path, kind: str) -> Any:
    if not isinstance(value, str) or not value:
        return value  # "" means "none" or "the built-in one", never the base folder
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    candidate = base / path
    if kind == "existing" and not candidate.exists():
        return value  # a hub id or "default", not a path
    return str(candidate)


def _type_schema(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    if isinstance(value, str):
        return {"type": "string"}
    if isinstance(value, list):
        return {"type": "array", "items": {"type": "string"}}
    raise TypeError(f"unsupported default type {type(value).__name__}")


def schema() -> dict[str, Any]:
    """The JSON Schema of a complete config, derived from the documented defaults."""
    sections: dict[str, dict[str, Any]] = {}
    for s in settings():
        prop = _type_schema(s.default)
        prop["description"] = s.doc
        target = prop["items"] if prop["type"] == "array" else prop
        if s.enum:
            target["enum"] = list(s.enum)
        if s.bound:
            op, limit = s.bound
            prop["minimum" if op == ">=" else "exclusiveMinimum"] = limit
        if s.default == "auto" and s.bound:  # "auto" or a number from the bound up
            prop = {"anyOf": [{"const": "auto"}, {"type": "integer", "minimum": s.bound[1]}],
                    "description": s.doc}
        sec = sections.setdefault(s.section, {"type": "object", "properties": {},
                                              "additionalProperties": False})
        sec["properties"][s.key] = prop
    return {"type": "object", "properties": sections, "additionalProperties": False}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_set(assignment: str) -> dict[str, Any]:
    """``section.key=value`` → nested dict; the value is read as TOML, else taken as text."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected section.key=value, e.g. lora.r=16")
    path, raw = assignment.split("=", 1)
    parts = path.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"--set {assignment!r}: the key must be section.key, e.g. lora.r=16")
    raw = raw.strip()
    try:
        parsed = tomllib.loads(f"v = {raw}")
    except tomllib.TOMLDecodeError:
        parsed = {"v": raw}
    if set(parsed) != {"v"}:  # "4\nlora.alpha = 99": more TOML than one value, never dropped
        raise ConfigError(f"--set {assignment!r}: one value per --set; give each setting its "
                          "own --set")
    value = parsed["v"]
    if isinstance(value, int) and not isinstance(value, bool) and _is_float_key(parts):
        value = float(value)
    if not isinstance(value, list) and isinstance(_default_of(parts), list):
        value = [value]  # data.train=/path means the list of that one path
    return {parts[0]: {parts[1]: value}}


def _is_float_key(parts: list[str]) -> bool:
    return isinstance(_default_of(parts), float)


def _default_of(parts: list[str]) -> Any:
    for s in settings():
        if s.section == parts[0] and s.key == parts[1]:
            return s.default
    return None


def _ints_to_floats(cfg: dict[str, Any]) -> None:
    """TOML `1` where a float is expected is what the user meant; accept it as 1.0."""
    for s in settings():
        sec = cfg.get(s.section)
        if isinstance(s.default, float) and isinstance(sec, dict):
            v = sec.get(s.key)
            if isinstance(v, int) and not isinstance(v, bool):
                sec[s.key] = float(v)


def read_file(config_file: str | Path) -> dict[str, Any]:
    """One config file as it overrides the defaults, its relative paths taken from its folder
    (not validated yet). Raises ConfigError naming the file."""
    path = Path(config_file)
    try:
        if not path.is_file():  # a folder, or a FIFO that would block the read forever
            raise ConfigError(f"{path}: not a config file (a folder or a special file)"
                              if path.exists() else f"{path}: config file not found")
        text = path.read_text(encoding="utf-8")
        user = tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied; make it readable") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the file or drop --config") from None
    if not text.startswith(RESOLVED_HEADER):
        # A run's config.toml was resolved before it was written (older runs kept paths from
        # the working directory): its paths are taken as they stand.
        resolve_paths(user, Path(os.path.abspath(path)).parent)
    return user


def load(config_file: str | Path | None = None, sets: list[str] = ()) -> dict[str, Any]:
    """Defaults ← config file ← --set, validated. Raises ConfigError with a useful message."""
    cfg = defaults()
    if config_file is not None:
        cfg = _merge(cfg, read_file(config_file))
    for assignment in sets:
        cfg = _merge(cfg, parse_set(assignment))
    _ints_to_floats(cfg)
    validate(cfg, source=str(config_file) if config_file else "--set")
    return cfg


def validate(cfg: dict[str, Any], source: str = "config") -> None:
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError("\n".join(_explain(e, source) for e in errors))


def _explain(err: jsonschema.ValidationError, source: str) -> str:
    path = ".".join(str(p) for p in err.absolute_path)
    sch = schema()
    if err.validator == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        allowed = sorted(err.schema.get("properties", {}))
        where = f"[{path}]" if path else "top level"
        msgs = []
        for key in extra:
            hint = _suggest(key, allowed)
            did = f" — did you mean {hint!r}?" if hint else "."
            msgs.append(f"{source}: unknown key {key!r} in {where}{did} "
                        f"Allowed: {', '.join(allowed)}")
        return "\n".join(msgs)
    node = sch
    for p in err.absolute_path:
        node = node.get("properties", {}).get(str(p), node.get("items", {}))
    doc = node.get("description", "") if isinstance(node, dict) else ""
    if err.validator == "enum":
        allowed = ", ".join(map(str, err.validator_value))
        return f"{source}: {path} = {err.instance!r} is not allowed. Allowed values: {allowed}"
    if err.validator == "type":
        return (f"{source}: {path} must be of type {err.validator_value}, "
                f"got {type(err.instance).__name__} {err.instance!r} ({doc})")
    return f"{source}: {path}: {err.message} ({doc})"


def _suggest(key: str, allowed: list[str]) -> str | None:
    close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        return close[0]
    prefixed = [a for a in allowed if key.startswith(a) or a.startswith(key)]
    return max(prefixed, key=len) if prefixed else None


def dumps(cfg: dict[str, Any]) -> str:
    """The resolved config as TOML, with each key's description above it."""
    docs = {s.path: s.doc for s in settings()}
    lines = [RESOLVED_HEADER, ""]
    for section, values in cfg.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            if doc := docs.get(f"{section}.{key}"):
                lines.append(f"# {doc}")
            lines.append(tomli_w.dumps({key: value}).strip())
        lines.append("")
    return "\n".join(lines)


def get(cfg: dict[str, Any], path: str) -> Any:
    section, key = path.split(".", 1)
    return cfg[section][key]
