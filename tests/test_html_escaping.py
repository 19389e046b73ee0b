"""Every user string that reaches a report is escaped: a scenario, an economic setting and a
sweep whose names, labels, descriptions and sources are all script payloads give a run
report and a sweep report in which no payload appears raw, in any HTML file written.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from sim.app.cli import main

SCRIPT = "<script>alert(1)</script>"
IMAGE = '"><img src=x onerror=alert(1)>'
PAYLOADS = (SCRIPT, IMAGE)


def quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


S, I = quoted(SCRIPT), quoted(IMAGE)

SCENARIO = f"""
name: payloads
description: {quoted(SCRIPT + " " + IMAGE)}
settings: {{patients: 30, horizon: 2 years, seed: 1}}
treatments:
  {S}:
    label: {I}
    description: {S}
    assess_at: {{dist: fixed, value: 3 months, source: {S}}}
    response: {{p: 0.5, source: {I}}}
    course: {{dist: exponential, mean: 12 months, source: {S}}}
    adverse_events:
      {quoted("<img src=x onerror=alert(1)>")}: {{probability: 0.3, onset: {{dist: fixed, value: 1 months}},
                                                 stops_treatment: 0.5, source: {S}}}
  {I}:
    label: {S}
    assess_at: {{dist: fixed, value: 3 months}}
    response: {{p: 0.4, source: {S}}}
    course: {{dist: exponential, mean: 12 months}}
strategies:
  {S}:
    label: {I}
    description: {S}
    lines: [{S}, {I}]
  {I}:
    label: {S}
    description: {I}
    lines: [{I}, {S}]
"""

ECONOMICS = f"""
name: {S}
description: {S}
currency: {S}
price_year: 2024
perspective: {I}
willingness_to_pay: [20000]
source: {S}
discount:
  costs: {{rate_per_year: 0.035}}
  qalys: {{rate_per_year: 0.035}}
  method: annual
  source: {I}
treatments:
  {S}:
    price: {{amount: 1, per: 1, unit: mg, source: {S}}}
    dose: {{amount: 10, unit: mg, every: 1 week, source: {I}}}
    monitoring:
      - {{item: {S}, cost: {{amount: 10, source: {I}}}, every: 3 months, source: {S}}}
  {I}:
    price: {{amount: 2, per: 1, unit: mg, source: {S}}}
    dose: {{amount: 10, unit: mg, every: 1 week, source: {I}}}
utilities:
  controlled_on_systemic: {{value: 0.69, source: {S}}}
  topical: {{value: 0.69, source: {I}}}
  uncontrolled_on_systemic: {{value: 0.53, source: {S}}}
  supportive_care: {{value: 0.53, source: {I}}}
"""

SWEEP = f"""
name: payload_sweep
description: {quoted(SCRIPT + IMAGE)}
source: {S}
base: scenario.yaml
economics: economics.yaml
vary:
  treatments.{SCRIPT}.response.p: {{values: [0.3, 0.6], source: {I}}}
one_way:
  treatments.{IMAGE}.response.p: {{low: 0.2, high: 0.6, source: {S}}}
psa:
  samples: 3
  parameters:
    treatments.{SCRIPT}.course.mean: {{dist: gamma, mean: 12 months, sd: 2 months, source: {I}}}
"""


def assert_escaped(directory: Path) -> None:
    pages = sorted(directory.rglob("*.html"))
    assert pages, f"no HTML written in {directory}"
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for payload in PAYLOADS:
            assert payload not in text, f"{payload} appears raw in {page}"
        assert "<script" not in text.lower() and "<img src=x" not in text.lower(), page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text, f"the payloads are not shown escaped in {page}"


@pytest.fixture
def files(tmp_path):
    (tmp_path / "scenario.yaml").write_text(SCENARIO, encoding="utf-8")
    (tmp_path / "economics.yaml").write_text(ECONOMICS, encoding="utf-8")
    (tmp_path / "sweep.yaml").write_text(SWEEP, encoding="utf-8")
    return tmp_path


def test_the_run_report_escapes_every_user_string(files):
    out = files / "run"
    result = CliRunner().invoke(main, ["run", str(files / "scenario.yaml"), "--economics", str(files / "economics.yaml"),
                                       "--out", str(out), "--report", "--quiet"])
    assert result.exit_code == 0, result.output
    assert_escaped(out)


def test_the_sweep_report_escapes_every_user_string(files):
    out = files / "sweep"
    result = CliRunner().invoke(main, ["sweep", str(files / "sweep.yaml"), "--out", str(out), "--workers", "1",
                                       "--report", "--quiet"])
    assert result.exit_code == 0, result.output
    assert_escaped(out)
