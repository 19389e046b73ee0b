"""Reading the accepted parameter sets of a Bayesian calibration for a PSA to draw from.

`adpath calibrate` with `method: {sir: ...}` writes `parameter_sets.csv` (one row per
accepted set, one column per free parameter, named and in units as in sweep tables) and
`calibration.json` (which key path each column is). A sweep's `psa: {calibrated: DIR}`
draws one whole set per sample, so the calibrated parameters keep their joint
(posterior) correlation; sample k takes set `SeedSequence([seed, PSA_STREAM,
CALIBRATED_STREAM], spawn_key=(k,))` picks, uniformly with replacement.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sim.loader import Problem, ScenarioError
from sim.app.sweep.parameters import Parameter, PathError, locate

CALIBRATED_STREAM = 0x534554  # "SET": which accepted set a PSA sample takes
MANIFEST = "calibration.json"


@dataclass(frozen=True)
class CalibratedSets:
    """The accepted sets of a calibration: their parameters, values (rows) and provenance."""

    directory: str
    parameters: tuple[Parameter, ...]
    rows: tuple[tuple[float, ...], ...]
    hash: str
    description: str

    def index(self, seed: int, stream: int, sample: int) -> int:
        """Which accepted set PSA sample `sample` takes (uniform, with replacement)."""
        sequence = np.random.SeedSequence([seed, stream, CALIBRATED_STREAM], spawn_key=(sample,))
        return int(np.random.default_rng(sequence).integers(len(self.rows)))

    def values(self, seed: int, stream: int, sample: int) -> dict[str, float]:
        """The values of sample `sample`, by column (units as in sweep tables)."""
        row = self.rows[self.index(seed, stream, sample)]
        return {p.column: value for p, value in zip(self.parameters, row)}


def read_calibrated_sets(directory: Path, document: dict, file: str, key: str = "psa.calibrated") -> CalibratedSets:
    """Read a calibration output directory for the scenario `document`; raise `ScenarioError`
    naming `file` and `key` when it is not a Bayesian calibration or its paths do not fit."""
    def fail(message: str) -> ScenarioError:
        return ScenarioError([Problem(file, key, f"{directory}: {message}")])

    manifest_path = Path(directory) / MANIFEST
    if not manifest_path.is_file():
        raise fail(f"no {MANIFEST} here: name the output directory of `adpath calibrate` (its --out)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise fail(f"cannot read {MANIFEST} ({exc}); run the calibration again") from None
    if manifest.get("method") != "sir" or not manifest.get("parameter_sets"):
        raise fail(f"this calibration used '{manifest.get('method')}', which gives one parameter set; a PSA draws "
                   "from the accepted sets of a Bayesian calibration: use method: {sir: ...}")
    csv = Path(directory) / manifest["parameter_sets"]
    try:
        data = csv.read_bytes()
        table = pd.read_csv(csv)
    except (OSError, ValueError) as exc:
        raise fail(f"cannot read {csv.name} ({exc}); run the calibration again") from None
    parameters, columns = [], []
    for entry in manifest["parameters"]:
        try:
            parameter = locate(tuple(entry["path"]), document)
        except PathError as exc:
            raise fail(f"the calibrated parameter {entry['name']} does not fit the sweep's base scenario: {exc}") from None
        if entry["column"] not in table.columns:
            raise fail(f"{csv.name} has no column {entry['column']}; run the calibration again")
        parameters.append(parameter)
        columns.append(entry["column"])
    rows = table[columns].to_numpy(dtype=float)
    if len(rows) == 0 or not np.isfinite(rows).all():
        raise fail(f"{csv.name} holds no usable parameter sets; run the calibration again")
    description = (f"{len(rows)} accepted sets of calibration {manifest.get('calibration_name')} "
                   f"({manifest.get('method_description', 'sir')})")
    return CalibratedSets(str(directory), tuple(parameters), tuple(map(tuple, rows.tolist())),
                          hashlib.sha256(data).hexdigest(), description)
