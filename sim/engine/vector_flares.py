"""Flares needing a corticosteroid burst, laid over the vector engine's trajectories.

As in the DES (`Trajectory._flares`), flares come in operational time: a patient's k-th
flare happens when the flare hazard accumulated over the trajectory (the rate of its
state, `topical`, `uncontrolled`, `controlled` or `supportive_care`, times the months
spent in it) reaches E1 + ... + Ek, a sum of the patient's unit exponentials. The
exponentials, and the uniforms deciding whether each burst works and whether a rebound
follows, belong to the patient and are the same in every strategy (common random
numbers). Both engines read them from `sim.draws.flare_uniforms` (`FLARES_PER_ROUND`
flares per patient per round, at a fixed place for each patient). The DES consumes the
hazard segment by segment, this module compares cumulative sums: the same flares and
bursts, with times equal to about 1e-9 months (rounding).
"""

from __future__ import annotations

import numpy as np

from sim.draws import FLARES_PER_ROUND
from sim.engine.vector_draws import chunk_flare_uniforms
from sim.guard import MAX_BURSTS, runaway_refusal
from sim.tables import BURST_REASONS, FLARE_STATES


def flare_rates(model) -> np.ndarray | None:
    """Flares per month in each flare state (`FLARE_STATES` order), or None when the model lays no flares."""
    if not (model.rescue and model.rescue.flare_rates):
        return None
    return np.array([model.rescue.flare_rates.get(name, 0.0) for name in FLARE_STATES])


def lay_flares(cohort) -> None:
    """Record the flare bursts of every trajectory of `cohort` (a `sim.engine.vector.Cohort`)."""
    rescue = cohort.model.rescue
    counts, start, stop, state, hazard = cohort.records.segments()  # segments with a hazard only
    if not start.size:
        return
    cumulative = np.cumsum(hazard)
    trajectories = np.flatnonzero(counts)
    first = (np.cumsum(counts) - counts)[trajectories]
    last = first + counts[trajectories] - 1
    base = cumulative[first] - hazard[first]  # the hazard accumulated before each trajectory
    total = cumulative[last] - base
    numbers = cohort.numbers
    # A hazard of twice MAX_BURSTS gives more than MAX_BURSTS flares with certainty (Poisson,
    # 170 SD away): refused before the rounds, whose rows would fill the memory first.
    overwhelming = np.flatnonzero(total > 2 * MAX_BURSTS)
    flares = int(overwhelming[0]) if overwhelming.size else _flares_within(numbers, cohort.patient[trajectories], total)
    if isinstance(flares, int):  # a trajectory with more than MAX_BURSTS flares: stopped before memory fills
        row = trajectories[flares]
        raise runaway_refusal(cohort.model.name, cohort.model.strategies[int(cohort.strategy[row])].name,
                              int(cohort.numbers.first_patient + cohort.patient[row]), episodes=False)
    which, position, effective, rebound = flares
    reached = base[which] + position
    at = np.searchsorted(cumulative, reached, side="right")
    at = np.clip(at, first[which], last[which])  # rounding at a trajectory's edges
    rate = cohort.records.flare_rates[state[at]]
    time = np.clip(start[at] + (reached - (cumulative[at] - hazard[at])) / rate, start[at], stop[at])
    effective = effective < rescue.response_probability
    rebound = rebound < rescue.rebound_probability
    cohort.records.burst(trajectories[which], time, BURST_REASONS.index("flare"), state[at], effective, rebound)


def _flares_within(numbers, patients: np.ndarray, total: np.ndarray) -> tuple[np.ndarray, ...] | int:
    """The flares of each trajectory (its patient, its total hazard): which trajectory,
    the accumulated hazard at which it happens, and the two uniforms of its burst; or the
    position of a trajectory with more than `MAX_BURSTS` flares (the runaway guard)."""
    which, position, effective, rebound = [], [], [], []
    reached = np.zeros(numbers.count)
    index = np.arange(len(patients))
    round_ = 0
    while index.size:
        u = chunk_flare_uniforms(numbers, round_)
        k = FLARES_PER_ROUND
        points = reached[:, None] + np.cumsum(-np.log1p(-u[:, :k]), axis=1)
        inside = points[patients[index]] < total[index, None]
        hit_traj, hit_k = np.nonzero(inside)
        hit_patient = patients[index[hit_traj]]
        which.append(index[hit_traj])
        position.append(points[hit_patient, hit_k])
        effective.append(u[hit_patient, k + hit_k])
        rebound.append(u[hit_patient, 2 * k + hit_k])
        index = index[inside[:, -1]]
        reached = points[:, -1]
        round_ += 1
        if index.size and round_ * k >= MAX_BURSTS:
            return int(index[0])
    return tuple(np.concatenate(parts) for parts in (which, position, effective, rebound))

