"""Limited resources: patients wait for a place; more places, shorter waits; unlimited is no limit."""

from __future__ import annotations

import pandas as pd
import pytest

from sim.loader import load_scenario
from sim.model import compile_model
from sim.runner import simulate

SMALL = {"settings.patients": 400}
ADVANCED = ("dupilumab", "tralokinumab", "upadacitinib", "abrocitinib")


def run(overrides):
    loaded = load_scenario("capacity_biologics", {**SMALL, **overrides})
    return simulate(compile_model(loaded.scenario, loaded.name), progress=False)


@pytest.fixture(scope="module")
def by_capacity():
    return {c: run({"resources.biologic_slots.capacity": c}) for c in (20, 60, "unlimited")}


def test_more_places_mean_shorter_waits(by_capacity):
    waits = {c: t.patients.groupby("strategy", observed=True)["months_waiting"].mean() for c, t in by_capacity.items()}
    assert (waits[20] > waits[60]).all()
    assert (waits["unlimited"] == 0).all()


def test_waits_change_the_proportion_back_on_topical(by_capacity):
    topical = {c: t.patients.assign(on=lambda p: p["final_state"] == "topical")
               .groupby("strategy", observed=True)["on"].mean() for c, t in by_capacity.items()}
    assert topical[20]["biologic_first"] < topical["unlimited"]["biologic_first"]


def test_only_treatments_needing_a_place_wait(by_capacity):
    e = by_capacity[20].episodes
    waited = e[e["months_waited"] > 0]
    assert len(waited) > 0
    assert set(waited["treatment"].astype(str)) <= set(ADVANCED)


def test_places_are_never_over_used(by_capacity):
    e = by_capacity[20].episodes.merge(by_capacity[20].patients[["strategy", "patient", "entry_month"]])
    e = e[e["treatment"].isin(ADVANCED)]
    for _, episodes in e.groupby("strategy", observed=True):
        # A place freed and taken at the same instant: release first (times to 1e-9 month).
        events = pd.concat([
            pd.DataFrame({"time": (episodes["entry_month"] + episodes["start"]).round(9), "change": 1}),
            pd.DataFrame({"time": (episodes["entry_month"] + episodes["stop"]).round(9), "change": -1}),
        ]).sort_values(["time", "change"])
        assert events["change"].cumsum().max() <= 20


def test_unlimited_places_equal_the_run_without_resources(by_capacity):
    no_resources = run({"resources": {}, **{f"treatments.{t}.requires": None for t in ADVANCED}})
    for name in ("episodes", "patients", "adverse_events", "bursts"):
        pd.testing.assert_frame_equal(getattr(by_capacity["unlimited"], name), getattr(no_resources, name))
