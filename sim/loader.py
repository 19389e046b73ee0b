"""Reading scenario files: safe YAML, `extends`, bundled names, and clear error messages.

`load_scenario` returns the validated `Scenario` and the resolved document (plain dicts,
with `extends` applied). Anything a user can get wrong ends in a `ScenarioError` whose
message names the file, the key path and what to do.
"""

from __future__ import annotations

import sys

import difflib
import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sim.schema import Scenario

_LEAF_KEYS = {"dist", "p", "events", "levels", "per_year", "per_month", "person_years"}
#: Keys of one accepted form of a probability or rate, and the keys of the other forms they replace.
_OTHER_FORMS = {
    "p": ("events", "n"),
    "events": ("p", "per_year", "per_month"),
    "n": ("p",),
    "person_years": ("per_year", "per_month"),
    "per_year": ("per_month", "events", "person_years"),
    "per_month": ("per_year", "events", "person_years"),
}
_UNION_TAGS = {"numeric", "categorical", "boolean"}


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a scenario: where (file, key path) and what."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.path}" if self.path else self.file
        return f"{where}: {self.message}"


class ScenarioError(Exception):
    """A scenario (or sweep) that cannot be used; `problems` says why."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        # The problems are the one argument, so that a copy made as type(e)(*e.args) (SimPy
        # rethrowing a process's error, pickling from a worker) keeps them.
        super().__init__(problems)

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


@dataclass(frozen=True)
class LoadedScenario:
    """A validated scenario with the file it came from and its resolved document."""

    scenario: Scenario
    document: dict
    file: Path
    name: str


def bundled_dir() -> Path:
    """Return the directory of the bundled scenarios."""
    return Path(str(importlib.resources.files("scenarios")))


def bundled_scenarios() -> dict[str, Path]:
    """Return the bundled ready-to-run scenarios by name (top-level YAML files)."""
    return {path.stem: path for path in sorted(bundled_dir().glob("*.yaml"))}


def resolve_bundled_file(name_or_path: str | Path, folder: str, what: str, listing: str) -> Path:
    """Return a file given as a path or as the name of a bundled one in `scenarios/<folder>/`;
    otherwise raise `ScenarioError` naming the closest bundled `what` and listing them
    after `listing` (e.g. "bundled sweeps")."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    bundled = {p.stem: p for p in sorted((bundled_dir() / folder).glob("*.yaml"))}
    stem = str(name_or_path).removesuffix(".yaml")
    if stem in bundled:
        return bundled[stem]
    hint = difflib.get_close_matches(Path(stem).name, list(bundled), n=1)
    fix = f"did you mean the bundled '{hint[0]}'? " if hint else ""
    raise ScenarioError([Problem(str(name_or_path), "", f"no such {what} file and no bundled {what} of that "
                                 f"name; {fix}{listing}: {', '.join(bundled) or 'none'}")])


def load_named_scenario(name: str, file: Path, key: str) -> LoadedScenario:
    """Load the scenario that `file` (a sweep or calibration file) names under `key`: a file
    beside it, or a bundled scenario; a wrong name is reported against `file` and `key`."""
    beside = Path(file).parent / name
    try:
        path = beside if beside.is_file() else resolve_scenario_path(name)
    except ScenarioError as exc:
        raise ScenarioError([Problem(str(file), key, p.message) for p in exc.problems]) from None
    return load_scenario(path)


def resolve_scenario_path(name_or_path: str) -> Path:
    """Return the file for a scenario given as a path or as the name of a bundled one."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    bundled = bundled_scenarios()
    stem = name_or_path.removesuffix(".yaml")
    if stem in bundled:
        return bundled[stem]
    hint = difflib.get_close_matches(stem, list(bundled), n=1)
    fix = f"did you mean '{hint[0]}'? " if hint else ""
    raise ScenarioError([Problem(
        name_or_path, "",
        f"no such file and no bundled scenario of that name; {fix}"
        f"bundled: {', '.join(bundled)} (see `adpath list`)",
    )])


def load_scenario(name_or_path: str | Path, overrides: dict[str, Any] | None = None,
                  overrides_from: str = "command line") -> LoadedScenario:
    """Read, merge (`extends`) and validate a scenario; raise `ScenarioError` if it is wrong.

    `overrides` maps dotted key paths (`settings.patients`) to values applied after
    `extends`; errors in them are reported as coming from `overrides_from`.
    """
    path = resolve_scenario_path(str(name_or_path))
    document, origins, removed = read_with_extends(path)
    for dotted, value in (overrides or {}).items():
        document = set_path(document, dotted, value)
        origins[tuple(_split_path(dotted))] = overrides_from
    document = _resolve_life_table(document, origins, path)
    try:
        scenario = Scenario.model_validate(document)
    except ValidationError as exc:
        raise ScenarioError(validation_problems(exc, document, origins, path, removed)) from None
    name = scenario.name or path.stem
    _deprecated_settings(scenario, path)
    return LoadedScenario(scenario=scenario, document=document, file=path, name=name)


RUN_OPTIONS = {"engine": "--engine", "chunk_size": "--chunk-size"}  # former settings, now options of adpath run
_DEPRECATION_SAID: set = set()


def _deprecated_settings(scenario, path) -> None:
    """Say once per file (on stderr) that `settings.engine` / `settings.chunk_size` are run options now."""
    given = sorted(key for key in RUN_OPTIONS if getattr(scenario.settings, key) is not None)
    if not given or (str(path), tuple(given)) in _DEPRECATION_SAID:
        return
    _DEPRECATION_SAID.add((str(path), tuple(given)))
    keys = " and ".join(f"settings.{key}" for key in given)
    options = " and ".join(RUN_OPTIONS[key] for key in given)
    print(f"adpath: {path}: {keys} is deprecated (still used for now): the engine and the chunk size are run "
          f"options; remove it from the scenario and pass {options} to adpath run or check (or engine= / "
          "chunk_size= to sim.runner.simulate)", file=sys.stderr)


MAX_ALIASES = 100
"""Most YAML aliases (`*name`) one file may use: real scenarios use none or a few, an
alias bomb ("billion laughs") thousands."""

MAX_EXPANDED_VALUES = 200_000
"""Most values a file may hold once its aliases are written out (the bundled files hold
under 3,000); nine aliases of nine aliases of ... hold billions."""

MAX_NESTING = 40
"""Deepest nesting of mappings and lists one file may hold (the bundled files reach 6)."""

MAX_EXTENDS = 20
"""Longest `extends` chain (the bundled scenarios use at most 3 links)."""

MAX_FILE_BYTES = 5_000_000
"""Largest scenario, sweep or economics file read (the bundled ones are under 40 kB)."""


class _YamlLimit(Exception):
    """A YAML document that breaks one of the loader's limits; `line` is 1-based."""

    def __init__(self, message: str, line: int | None):
        self.message = message
        self.line = line
        super().__init__(message)


class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses duplicate keys, alias bombs and runaway nesting."""

    def __init__(self, stream):
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _YamlLimit(f"more than {MAX_ALIASES} YAML aliases (*name); write the values out "
                                 "instead of referring to anchors", self.peek_event().start_mark.line + 1)
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                raise _YamlLimit(f"nested more than {MAX_NESTING} levels deep; scenario files need far "
                                 "fewer: flatten the structure", self.peek_event().start_mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:
                continue  # an unhashable key: SafeLoader's own error says so
            if first != key_node.start_mark.line + 1:
                raise _YamlLimit(f"key '{key}' appears twice (lines {first} and "
                                 f"{key_node.start_mark.line + 1}); keep one of them", key_node.start_mark.line + 1)
        return super().construct_mapping(node, deep=deep)


def _decoded_text(path: Path) -> str:
    """Return the file's text as UTF-8, or raise `ScenarioError` naming what was found instead."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ScenarioError([Problem(str(path), "", f"the file is {size:,} bytes; scenario files are "
                                         f"text of at most {MAX_FILE_BYTES:,} bytes")])
        data = path.read_bytes()
    except OSError as exc:
        raise ScenarioError([Problem(str(path), "", f"cannot read the file: {exc.strerror}")]) from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        found = "UTF-16 text"
    elif b"\x00" in data:
        found = "binary data (NUL bytes)"
    else:
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            found = f"text that is not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}; Latin-1 or Windows-1252?)"
    raise ScenarioError([Problem(str(path), "", f"the file holds {found}; save it as UTF-8 text")])


def _expanded_values(node: Any, sizes: dict) -> int:
    """Count the values of a parsed document as if every alias were written out in full."""
    if not isinstance(node, dict | list):
        return 1
    known = sizes.get(id(node))
    if known is None:
        children = node.items() if isinstance(node, dict) else enumerate(node)
        known = 1 + sum(_expanded_values(value, sizes) for _, value in children)
        sizes[id(node)] = known
    return known


def read_yaml(path: Path) -> Any:
    """Parse one YAML file safely (no object-building tags); raise `ScenarioError` if bad.

    Refused with one message each: text that is not UTF-8, duplicate keys, more than
    `MAX_ALIASES` aliases, nesting deeper than `MAX_NESTING`.
    """
    text = _decoded_text(path)
    try:
        document = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
        if _expanded_values(document, {}) > MAX_EXPANDED_VALUES:
            raise _YamlLimit(f"its aliases expand to more than {MAX_EXPANDED_VALUES:,} values (an alias bomb?); "
                             "write the values out instead of nesting aliases", None)
        return document
    except _YamlLimit as exc:
        raise ScenarioError([Problem(str(path), f"line {exc.line}" if exc.line else "", exc.message)]) from None
    except yaml.constructor.ConstructorError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise ScenarioError([Problem(
            str(path), f"line {line}",
            f"YAML tag not allowed ({exc.problem}); scenario files hold plain values only: "
            "remove the '!!' tag",
        )]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ScenarioError([Problem(
            str(path), where,
            f"YAML syntax error: {exc.problem}; check indentation, colons and quotes there",
        )]) from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise ScenarioError([Problem(str(path), "", f"YAML error: {exc}")]) from None


def read_with_extends(path: Path, bundled: Path | None = None, what: str = "scenario") -> tuple[dict, dict, dict]:
    """Read a YAML file and the chain of files it `extends`; return the merged document,
    the file each key path came from (`origins`) and the key paths a `null` removed
    (path -> the file that said so).

    `extends` names a file beside the child (or below its folder) or a file of the
    `bundled` folder (default: the bundled scenarios), with or without `.yaml`. A child's
    mappings merge into the parent's key by key; `null` removes an inherited key (a
    strategy, a treatment, a whole block). Refused with one message each: a cycle, a
    missing parent, a chain longer than `MAX_EXTENDS`, an `extends` outside the folders.
    """
    return _read_with_extends(path, (), bundled or bundled_dir(), what)


def _read_with_extends(path: Path, stack: tuple[Path, ...], bundled: Path, what: str) -> tuple[dict, dict, dict]:
    resolved = path.resolve()
    if resolved in stack:
        chain = " -> ".join(p.name for p in (*stack, resolved))
        raise ScenarioError([Problem(str(path), "extends", f"extends cycle: {chain}; remove one of the links")])
    if len(stack) >= MAX_EXTENDS:
        raise ScenarioError([Problem(str(stack[0]), "extends", f"the extends chain is longer than {MAX_EXTENDS} "
                                     f"files (it reached {path.name}); inherit from fewer levels")])
    raw = read_yaml(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        keys = {"scenario": "settings:, treatments:, ...", "sweep": "base:, vary:, psa:, ...",
                "economics": "currency:, treatments:, utilities:, ..."}.get(what, "...")
        raise ScenarioError([Problem(str(path), "", f"{'an' if what[0] in 'aeiou' else 'a'} {what} file must be a mapping of keys ({keys})")])
    raw = dict(raw)
    parent_ref = raw.pop("extends", None)
    own_origins = {key_path: str(path) for key_path in _key_paths(raw)}
    if parent_ref is None:
        return raw, own_origins, {}
    parent_path = _find_parent(parent_ref, path, bundled, what)
    base, origins, removed = _read_with_extends(parent_path, (*stack, resolved), bundled, what)
    origins.update(own_origins)
    removed.update({key_path: str(path) for key_path in _null_paths(raw)})
    return deep_merge(base, raw), origins, removed


def _null_paths(node: dict, prefix: tuple = ()) -> list[tuple]:
    """Key paths of a child document whose value is null (keys it removes from its parent)."""
    paths = []
    for key, value in node.items():
        if value is None:
            paths.append((*prefix, key))
        elif isinstance(value, dict):
            paths += _null_paths(value, (*prefix, key))
    return paths


def _find_parent(reference: Any, child: Path, bundled: Path | None = None, what: str = "scenario") -> Path:
    bundled = bundled or bundled_dir()
    if not isinstance(reference, str) or not reference.strip():
        example = {"scenario": "evidence/adult_conventional.yaml", "sweep": "modern_psa",
                   "economics": "uk_nhs"}.get(what, "base.yaml")
        raise ScenarioError([Problem(str(child), "extends", f"extends must name a file, e.g. extends: {example}")])
    folders = (child.parent, bundled, bundled)
    for folder, candidate in zip(folders, (child.parent / reference, bundled / reference,
                                           bundled / f"{reference}.yaml")):
        if not candidate.resolve().is_relative_to(folder.resolve()):
            raise ScenarioError([Problem(
                str(child), "extends",
                f"'{reference}' lies outside this {what}'s folder ({folder}); extends names a file in that "
                f"folder (or below it) or a bundled {what}: copy the parent file beside this one")])
        if candidate.is_file():
            return candidate
    raise ScenarioError([Problem(
        str(child), "extends",
        f"cannot find '{reference}' (looked beside this file and among the bundled {what} files in {bundled}); "
        "give a path relative to this file or a bundled name",
    )])


def deep_merge(base: dict, override: dict) -> dict:
    """Return `base` with `override` applied: mappings merge key by key, other values replace.

    A mapping that is itself one parameter (it has `dist`, `p`, `events` or `levels`)
    replaces the base value whole, so that changing a distribution's family leaves no
    stale parameters behind. `null` removes the key from the result.
    """
    merged = dict(base)
    for key, value in override.items():
        old = merged.get(key)
        if value is None:
            # null removes the inherited key (a strategy, a block): as if never written.
            merged.pop(key, None)
        elif isinstance(old, dict) and isinstance(value, dict) and not (_LEAF_KEYS & value.keys()):
            merged[key] = deep_merge(old, value)
        else:
            merged[key] = value
    return merged


def _resolve_life_table(document: dict, origins: dict, path: Path) -> dict:
    """Make a mortality life-table path absolute, relative to the file that declared it."""
    mortality = document.get("mortality")
    if not isinstance(mortality, dict) or not isinstance(mortality.get("life_table"), str):
        return document
    declared_in = Path(_origin(("mortality", "life_table"), origins, path))
    table = Path(mortality["life_table"])
    for candidate in (table, declared_in.parent / table, bundled_dir() / table):
        if candidate.is_file():
            return set_path(document, "mortality.life_table", str(candidate.resolve()))
    raise ScenarioError([Problem(str(declared_in), "mortality.life_table",
                                 f"cannot find the life table '{table}' (looked beside this file and among the "
                                 "bundled scenarios); give a CSV path with columns age,qx")])


def set_path(document: dict, dotted: str, value: Any) -> dict:
    """Return a copy of `document` with the value at dotted key path `dotted` replaced.

    Setting one form of a probability or rate (`p`, `per_year`, ...) drops the other forms
    the parent held, so `response.p` can replace inherited counts.
    """
    head, _, rest = dotted.partition(".")
    updated = dict(document)
    if not rest:
        drop_other_forms(updated, head)
        updated[head] = value
        return updated
    child = document.get(head)
    updated[head] = set_path(child if isinstance(child, dict) else {}, rest, value)
    return updated


def drop_other_forms(mapping: dict, key: str) -> None:
    """Remove from `mapping`, in place, the keys of the forms that setting `key` replaces
    (`p` replaces `events`/`n`, `per_year` replaces `per_month` or counts, ...)."""
    for other in _OTHER_FORMS.get(key, ()):
        mapping.pop(other, None)


def _key_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    paths = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            paths += _key_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            paths += _key_paths(value, (*prefix, i))
    return paths


def validation_problems(exc: ValidationError, document: dict, origins: dict, path: Path,
                        removed: dict | None = None) -> list[Problem]:
    """Turn pydantic's errors into problems naming the file (via `origins`) and key path;
    a required key that a `null` removed (`removed`: key path -> file) is said so."""
    problems = []
    for error in exc.errors():
        key_path = _key_path(error, document)
        file = _origin(key_path, origins, path)
        message = _message(error)
        if error["type"] == "missing" and removed and key_path in removed:
            file = removed[key_path]
            message = ("this key is required, but null here removes the inherited value; give a value instead "
                       "(or drop the line to keep the parent's)")
        problems.append(Problem(file, format_key_path(key_path), message))
    return list(dict.fromkeys(problems))


def _key_path(error: dict, document: dict) -> tuple:
    ctx = error.get("ctx") or {}
    if "path" in ctx:
        return tuple(_split_path(ctx["path"]))
    kept, node = [], document
    loc = list(error["loc"])
    for i, element in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, dict) and element in node:
            kept.append(element)
            node = node[element]
        elif isinstance(node, list) and isinstance(element, int) and element < len(node):
            kept.append(element)
            node = node[element]
        elif last and error["type"] == "missing":
            kept.append(element)
        elif element in _UNION_TAGS or isinstance(element, str) and element.startswith("function-"):
            continue
    if error["type"] == "unknown_key":
        kept.append(ctx["key"])
    return tuple(kept)


def _split_path(text: str) -> list:
    parts = []
    for piece in text.split("."):
        if "[" in piece:
            name, index = piece.rstrip("]").split("[")
            parts += [name, int(index)]
        else:
            parts.append(piece)
    return parts


def format_key_path(key_path: tuple) -> str:
    """Return a key path as `a.b[2].c`."""
    text = ""
    for element in key_path:
        text += f"[{element}]" if isinstance(element, int) else (f".{element}" if text else str(element))
    return text


def _origin(key_path: tuple, origins: dict, default: Path) -> str:
    for length in range(len(key_path), 0, -1):
        if key_path[:length] in origins:
            return origins[key_path[:length]]
    return str(default)


_TYPE_HINTS = {
    "missing": "this key is required; add it",
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "string_type": "expected text",
    "bool_parsing": "expected true or false",
    "dict_type": "expected a mapping of keys",
    "model_type": "expected a mapping of keys",
    "list_type": "expected a list, e.g. [a, b]",
    "too_short": "must not be empty",
}


def _message(error: dict) -> str:
    kind = error["type"]
    message = error["msg"].removeprefix("Value error, ")
    if kind in _TYPE_HINTS:
        got = error.get("input")
        got_text = "" if kind == "missing" else f" (got {got!r})"
        return f"{_TYPE_HINTS[kind]}{got_text}"
    if kind == "literal_error":
        return f"{message} (got {error.get('input')!r})"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        return f"{message} (got {error.get('input')!r})"
    return message
