"""Shared fixtures: small scenario files written on the fly."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

MINIMAL = """
name: minimal
settings: {patients: 50, horizon: 5 years, seed: 3}
treatments:
  drug_a:
    label: Drug A
    assess_at: {dist: fixed, value: 3 months}
    response: {p: 0.5}
    course: {dist: exponential, mean: 12 months}
strategies:
  only_a:
    lines: [drug_a]
"""


@pytest.fixture
def write_scenario(tmp_path: Path):
    """Return a function that writes YAML text (dedented) to a file and returns its path."""

    def write(text: str, name: str = "scenario.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write
