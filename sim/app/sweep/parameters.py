"""A scenario parameter named by a key path (`treatments.cyclosporine.cap`): where it sits
in the scenario schema, its unit, and how a value from a sweep file is written there.

Paths are dotted keys, with `[i]` for an element of a list (`response_modifiers[0]`).
`locate` walks the pydantic schema of `Scenario` alongside the resolved scenario document,
so a misspelt key gets a did-you-mean from the schema (`cpa` -> `cap`) and a misspelt name
one from the scenario itself (`cyclosporin` -> `cyclosporine`), before anything runs.
"""

from __future__ import annotations

import json
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from sim.economics import EconomicsSpec
from sim.loader import drop_other_forms, format_key_path
from sim.schema import (
    DistributionSpec,
    Duration,
    EndOfCourseSpec,
    Probability,
    RateSpec,
    Scenario,
    suggest,
)
from sim.units import DurationError, parse_duration

_DURATION_CHECK = Duration.__metadata__[0]

#: What a path can point at. `fates` is a set of shares that must sum to 1 (the fates at
#: the end of a course, the levels of a covariate, the first-line choice).
KINDS = ("probability", "rate", "distribution", "duration", "integer", "number", "fates",
         "flag", "text", "list", "block")


class PathError(ValueError):
    """A key path that does not name anything in the scenario; the message says why."""


@dataclass(frozen=True)
class Parameter:
    """A place in a scenario a sweep can set: its path, what it holds and its unit.

    `unit` is `months` for durations (and distributions of durations), `per_year` for
    rates, empty otherwise (probabilities are proportions, counts are counts).
    """

    path: tuple
    kind: str
    optional: bool
    unit: str

    @property
    def text(self) -> str:
        """The path as written in a sweep file (`treatments.cyclosporine.cap`)."""
        return format_key_path(self.path)

    @property
    def column(self) -> str:
        """The column name of this parameter's values in sweep tables, with its unit."""
        return self.text + (f"_{self.unit}" if self.unit else "")


_PIECE = re.compile(r"([^\[\]]+)((?:\[\d+\])*)")


def split_path(text: str) -> tuple:
    """Return a dotted key path (`a.b[2].c`) as a tuple of keys and list indices."""
    elements: list = []
    for piece in str(text).split("."):
        match = _PIECE.fullmatch(piece.strip())
        if match is None:
            raise PathError(f"cannot read key path '{text}'; write keys separated by dots, "
                            "with [0] for an element of a list")
        elements.append(match.group(1))
        elements += [int(index) for index in re.findall(r"\[(\d+)\]", match.group(2))]
    return tuple(elements)


ECONOMICS = "economics"  # first key of paths into the sweep's economic setting


def locate(path: str | tuple, document: dict) -> Parameter:
    """Return the `Parameter` at `path` in a resolved scenario document; raise `PathError`.

    Paths starting with `economics.` walk the economic setting's document, which the
    caller puts under `document["economics"]` (`sim.economics.EconomicsSpec` schema).

    Keys of schema blocks must exist in the schema; names of treatments, strategies,
    adverse events and covariates must exist in `document` (a sweep varies what a
    scenario has, it does not add treatments).
    """
    elements = split_path(path) if isinstance(path, str) else tuple(path)
    candidates, optional, duration = [Scenario], False, False
    node: Any = document
    start = 0
    if elements[:1] == (ECONOMICS,):
        # A sweep with an economic setting can also draw its numbers (prices, utilities).
        if ECONOMICS not in document:
            raise PathError("economics.* names a number of the economic setting; add economics: "
                            "(uk_nhs, us_payer or a file) to the sweep file")
        candidates, node, start = [EconomicsSpec], document[ECONOMICS], 1
    for depth, key in enumerate(elements[start:], start):
        where = format_key_path(elements[:depth]) or "the top level"
        candidates, optional, duration = _step(candidates, node, key, where)
        node = _child(node, key)
    kind, unit = _classify(candidates, duration, node, elements)
    return Parameter(elements, kind, optional, unit)


def _step(candidates: list, node: Any, key, where: str) -> tuple[list, bool, bool]:
    if isinstance(key, int):
        lists = [c for c in candidates if typing.get_origin(c) is list]
        if not lists:
            raise PathError(f"{where} is not a list; [{key}] cannot follow it")
        if not isinstance(node, list) or key >= len(node):
            size = len(node) if isinstance(node, list) else 0
            raise PathError(f"{where} has {size} element(s); [{key}] is beyond its end")
        return _unwrap(typing.get_args(lists[0])[0])
    models = [c for c in candidates if _is_model(c)]
    if models:
        fits = [m for m in models if key in _keys(m)]
        if not fits:
            known = sorted({k for m in models for k in _keys(m)})
            raise PathError(f"unknown key '{key}' under {where}{suggest(key, known)}; allowed: {', '.join(known)}")
        field = _keys(fits[0])[key]
        kinds, optional, duration = _unwrap(field.annotation)
        return kinds, optional, duration or _DURATION_CHECK in field.metadata
    mappings = [c for c in candidates if typing.get_origin(c) is dict]
    if mappings:
        key_type, value_type = typing.get_args(mappings[0])
        allowed = typing.get_args(key_type) if typing.get_origin(key_type) is typing.Literal else None
        present = list(node) if isinstance(node, dict) else []
        if (allowed is not None and key not in allowed) or (allowed is None and key not in present):
            names = list(allowed) if allowed is not None else present
            raise PathError(f"no '{key}' under {where}{suggest(key, names)}; "
                            f"known: {', '.join(map(str, names)) or 'none'}")
        return _unwrap(value_type)
    raise PathError(f"{where} is a single value; it has no key '{key}'")


def _child(node: Any, key) -> Any:
    if isinstance(key, int):
        return node[key] if isinstance(node, list) and key < len(node) else None
    return node.get(key) if isinstance(node, dict) else None


def _is_model(kind) -> bool:
    return isinstance(kind, type) and issubclass(kind, BaseModel)


def _keys(model: type[BaseModel]) -> dict:
    keys = {}
    for name, field in model.model_fields.items():
        keys[field.alias or name] = field
    return keys


def _unwrap(annotation) -> tuple[list, bool, bool]:
    """Return (the possible types, whether None is allowed, whether it is a duration)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        inner, *metadata = typing.get_args(annotation)
        kinds, optional, duration = _unwrap(inner)
        return kinds, optional, duration or _DURATION_CHECK in metadata
    if origin in (typing.Union, types.UnionType):
        kinds, optional, duration = [], False, False
        for member in typing.get_args(annotation):
            if member is type(None):
                optional = True
                continue
            more, more_optional, more_duration = _unwrap(member)
            kinds += more
            optional, duration = optional or more_optional, duration or more_duration
        return kinds, optional, duration
    return [annotation], False, False


def _classify(candidates: list, duration: bool, node: Any, elements: tuple) -> tuple[str, str]:
    covariate = elements[:2] == ("population", "covariates")
    if duration:
        return "duration", "" if covariate else "months"
    models = [c for c in candidates if _is_model(c)]
    if len(models) > 1:
        models = [_matching_model(models, node)]
    if models:
        model = models[0]
        if model is Probability:
            return "probability", ""
        if model is RateSpec:
            return "rate", "per_year"
        if model is DistributionSpec:
            return "distribution", "" if covariate else "months"
        if model is EndOfCourseSpec:
            return "fates", ""
        return "block", ""
    kind = candidates[0]
    if typing.get_origin(kind) is dict and typing.get_args(kind)[1] is Probability:
        return "fates", ""
    if typing.get_origin(kind) is dict:
        return "block", ""
    if typing.get_origin(kind) is list:
        return "list", ""
    if kind is bool:
        return "flag", ""
    if kind is int:
        return "integer", ""
    if kind is float:
        return "number", ""
    return "text", ""


def _matching_model(models: list, node: Any):
    for model in models:
        try:
            model.model_validate(node)
            return model
        except ValidationError:
            continue
    return models[0]


# ------------------------------------------------------------------------- values


def is_none(value: Any) -> bool:
    """Whether a sweep value means "none" (YAML null or the word none)."""
    return value is None or (isinstance(value, str) and value.strip().lower() == "none")


def is_scalar(value: Any) -> bool:
    """Whether a value is a single number or a duration such as `6 months`."""
    return isinstance(value, (int, float, str)) and not isinstance(value, bool)


def document_value(parameter: Parameter, value: Any) -> Any:
    """Return `value` as the scenario document should hold it at `parameter`.

    `none` clears an optional parameter (no cap); a bare number or duration given for a
    distribution becomes `{dist: fixed, value: ...}`; a bare number for a rate is per
    year. Anything else is written as given and validated by the scenario schema.
    """
    if is_none(value):
        if not parameter.optional:
            raise PathError(f"{parameter.text} cannot be none; give a value")
        return None
    if parameter.kind == "distribution" and is_scalar(value):
        return {"dist": "fixed", "value": value}
    if parameter.kind == "rate" and is_scalar(value):
        return {"per_year": value}
    return value


def numeric_value(parameter: Parameter, value: Any) -> float | None:
    """Return a sweep value as a number in the parameter's unit, or None if it is not one.

    Durations are in months; probabilities written as counts give events/n; a fixed
    distribution gives its value; rates are per year.
    """
    if is_none(value) or isinstance(value, bool):
        return None
    if isinstance(value, dict):
        return _numeric_mapping(parameter, value)
    if parameter.kind in ("duration", "distribution") and isinstance(value, str):
        try:
            return parse_duration(value)
        except DurationError:
            return None
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _numeric_mapping(parameter: Parameter, value: dict) -> float | None:
    if parameter.kind == "probability":
        if value.get("p") is not None:
            return float(value["p"])
        if value.get("n"):
            return value.get("events", 0) / value["n"]
    if parameter.kind == "distribution" and value.get("dist") == "fixed":
        return numeric_value(parameter, value.get("value"))
    if parameter.kind == "rate":
        try:
            return RateSpec.model_validate(value).per_month_value * 12.0
        except ValidationError:
            return None
    return None


def value_label(value: Any) -> str:
    """Return a sweep value as short text for tables and figures (`6 months`, `none`)."""
    if is_none(value):
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(", ", ": "), default=str)
    return str(value)


# ---------------------------------------------------------------------- documents


def get_path(document: Any, path: tuple) -> Any:
    """Return the value at `path` in a document (None where the path does not exist)."""
    node = document
    for key in path:
        node = _child(node, key)
    return node


def set_path(document: Any, path: tuple, value: Any) -> Any:
    """Return a copy of `document` with `value` at `path`; the original is not changed.

    Mappings missing on the way are created; list elements are addressed by position.
    """
    if not path:
        return value
    key, rest = path[0], path[1:]
    if isinstance(key, int):
        items = list(document) if isinstance(document, list) else []
        items[key] = set_path(items[key], rest, value)
        return items
    updated = dict(document) if isinstance(document, dict) else {}
    if not rest:
        drop_other_forms(updated, key)
    updated[key] = set_path(updated.get(key), rest, value)
    return updated


def apply_overrides(document: dict, overrides) -> dict:
    """Return `document` with every (path, value) of `overrides` written into it, in order."""
    for path, value in overrides:
        document = set_path(document, path, value)
    return document
