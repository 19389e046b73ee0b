"""Where every number of a scenario comes from.

A parameter is a mapping that holds numbers or durations directly (a probability, a
distribution, a set of fates). Its source is its own `source:` or that of the nearest
enclosing mapping. `parameter_table` lists them all for the report; `unsourced`
finds the ones without a source, which the tests forbid in bundled scenarios.
"""

from __future__ import annotations

import re

from sim.loader import format_key_path

# Blocks that hold run settings or text, not evidence.
_NOT_EVIDENCE = {"settings", "name", "description", "label"}
_TEXT_KEYS = {"source", "label", "description", "dose", "response_definition", "why", "dist",
              "metric", "treatment", "fate", "state", "adverse_event", "strategy", "on_relapse",
              "enforce", "age_group", "age_groups", "lines"}
_NUMBER_WITH_UNIT = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)\s*[A-Za-z]+\s*$")


def parameter_table(document: dict) -> list[dict]:
    """Return one row per parameter: `path`, `value` (compact text) and `source`."""
    rows = []
    for path, node, source in _parameters(document, (), None):
        rows.append({"path": format_key_path(path), "value": _compact(node), "source": source or ""})
    return rows


def unsourced(document: dict) -> list[str]:
    """Return the key paths of parameters that carry no source, own or inherited."""
    return [format_key_path(path) for path, _, source in _parameters(document, (), None) if not source]


def is_assumption(source: str) -> bool:
    """Whether a source declares an assumption (it must then give a rationale)."""
    return source.strip().lower().startswith("assumption")


def _parameters(node, path: tuple, inherited: str | None):
    if not isinstance(node, dict):
        return
    source = node.get("source", inherited)
    if _holds_numbers(node):
        yield path, node, source
    for key, value in node.items():
        if isinstance(value, dict) and not (len(path) == 0 and key in _NOT_EVIDENCE):
            yield from _parameters(value, (*path, key), source)


def _holds_numbers(node: dict) -> bool:
    for key, value in node.items():
        if key in _TEXT_KEYS:
            continue
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            return True
        if isinstance(value, str) and _NUMBER_WITH_UNIT.match(value):
            return True
        if isinstance(value, list) and any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return True
    return False


def _compact(node: dict) -> str:
    parts = []
    for key, value in node.items():
        if key in ("source", "label", "description", "why"):
            continue
        if isinstance(value, dict):
            inner = _compact(value)
            if inner:
                parts.append(f"{key}: {inner}")
        else:
            parts.append(f"{key}={value}")
    if _is_number(node.get("events")) and _is_number(node.get("n")) and node["n"]:
        parts.append(f"= {node['events'] / node['n']:.3f}")
    return ", ".join(parts)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
