"""Whether a change to the engines left every table as it was: for speed work, where the
tables must stay identical to the last bit.

    python benchmarks/same_tables.py save BASELINE_DIR     # on the commit before the change
    python benchmarks/same_tables.py check BASELINE_DIR    # on the change: exit 1 if any table differs

Runs every bundled scenario (2,000 patients, 2 replicates; `capacity_biologics` 600, as
its patients compete for limited resources) with both engines (the DES only where
resources are limited), in chunks of 700 patients so that chunk boundaries are crossed,
and compares the four tables (episodes, patients, adverse events, bursts) with
`DataFrame.equals`. The baseline is kept as pickles in BASELINE_DIR (about 10 MB).
Run it from the checkout whose code is to be compared (the one on `sys.path`).
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

TABLES = ("episodes", "patients", "adverse_events", "bursts")


def runs():
    """Yield (name-engine, tables) for every bundled scenario and engine."""
    from sim.loader import bundled_scenarios, load_scenario
    from sim.model import compile_model
    from sim.runner import simulate

    for name in bundled_scenarios():
        patients = 600 if name == "capacity_biologics" else 2000
        loaded = load_scenario(name, {"settings.patients": patients, "settings.replicates": 2})
        model = compile_model(loaded.scenario, loaded.name)
        for engine in ["des"] if model.limited_resources else ["des", "compiled"]:
            yield f"{name}-{engine}", simulate(model, engine=engine, progress=False, chunk_size=700)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["save", "check"])
    parser.add_argument("baseline", type=Path, help="directory of the baseline's pickled tables")
    args = parser.parse_args()
    if args.mode == "check" and not args.baseline.is_dir():
        print(f"{args.baseline}: no baseline there; run `save` on the commit to compare with first", file=sys.stderr)
        return 2
    args.baseline.mkdir(parents=True, exist_ok=True)
    different = 0
    for key, tables in runs():
        file = args.baseline / f"{key}.pkl"
        if args.mode == "save":
            file.write_bytes(pickle.dumps(tables))
            continue
        base = pickle.loads(file.read_bytes())
        for table in TABLES:
            if not getattr(base, table).equals(getattr(tables, table)):
                different += 1
                print(f"different: {key} {table}")
    if args.mode == "save":
        print(f"saved the tables of every bundled scenario in {args.baseline}")
        return 0
    print("every table identical" if not different else f"{different} tables differ")
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main())
