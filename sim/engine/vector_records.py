"""What the vector engine records: one block of arrays per pass of its loop, joined once.

The columns and codes are those of `sim.engine.records.Records` (the DES's), so the same
functions turn them into the tidy tables; rows come in any order and are sorted there.
"""

from __future__ import annotations

import numpy as np

from sim.tables import FLARE_STATES, REASON_CODE, STATE_CODE


#: Flare states of a segment of time (codes of `FLARE_STATES`).
TOPICAL, UNCONTROLLED, CONTROLLED, SUPPORTIVE = (FLARE_STATES.index(s) for s in ("topical", "uncontrolled", "controlled", "supportive_care"))

_EPISODE_TYPES = {
    "strategy": np.int16, "patient": np.int32, "episode": np.int16, "line": np.int16, "treatment": np.int16,
    "start": np.float64, "stop": np.float64, "reason": np.int8, "responded": np.int8, "assessed": np.float64,
    "retreatment": bool, "adverse_events": np.int16, "stopping_adverse_event": np.int16, "escalated": bool,
    "below_target": bool, "bridged": bool, "months_waited": np.float64,
}
_EVENT_FIELDS = ("strategy", "patient", "episode", "treatment", "adverse_event", "time", "stopped_treatment")
_BURST_FIELDS = ("strategy", "patient", "time", "reason", "state", "effective", "rebound")


class VectorRecords:
    """Episodes, adverse events, bursts, patient summaries (and, for flares, the segments
    of time controlled or not) of one chunk, as blocks of arrays."""

    def __init__(self, cohort, flare_rates: np.ndarray | None):
        self.cohort = cohort
        self.flare_rates = flare_rates  # flares per month in each flare state (`FLARE_STATES` order)
        self.keep_segments = flare_rates is not None
        self._blocks: dict[str, list[tuple]] = {"episodes": [], "events": [], "bursts": [], "segments": []}
        self._segments_of = np.zeros(cohort.size, dtype=np.int64)  # segments recorded per trajectory
        self.episodes = self.events = self.patients = self.bursts = None

    def episode(self, rows, line, treatment, start, stop, reason, assessed, planned) -> None:
        """Record one episode of each of `rows` (times in months since entry)."""
        c = self.cohort
        number = c.episodes[rows]
        counts = self._adverse_events(rows, number, start, planned)
        responded = np.where(planned.known, planned.responded, -1)
        self._blocks["episodes"].append((
            rows, number, line, treatment, start, stop, reason, responded, assessed, planned.retreatment, counts,
            planned.stopper, planned.escalated, planned.below_target, planned.bridged))
        if self.keep_segments:
            self._controlled_segments(rows, start, stop, assessed, planned)

    def _adverse_events(self, rows, number, start, planned) -> np.ndarray:
        """Record the adverse events seen during the episodes; return their count per episode."""
        counts = np.zeros(rows.size, dtype=np.int16)
        for group, plan in planned.plans:
            at = group[plan.event_episode]
            seen = plan.event_happens & (~planned.censored[at] | (plan.event_onset <= planned.observed[at]))
            if not seen.any():
                continue
            at, index = at[seen], plan.event_index[seen]
            counts += np.bincount(at, minlength=rows.size).astype(np.int16)
            stopped = plan.event_stops[seen] & (planned.stopper[at] == index)
            self._blocks["events"].append((
                self.cohort.strategy[rows[at]], self._patient(rows[at]), number[at],
                self.cohort.treatment[rows[at]], index, start[at] + plan.event_onset[seen], stopped))
        return counts

    def _controlled_segments(self, rows, start, stop, assessed, planned) -> None:
        known = planned.known
        self.segment(rows[~known], start[~known], stop[~known], UNCONTROLLED)
        self.segment(rows[known], start[known], assessed[known], UNCONTROLLED)
        state = np.where(planned.responded[known], CONTROLLED, UNCONTROLLED)
        self.segment(rows[known], assessed[known], stop[known], state)

    def segment(self, rows, start, stop, state) -> None:
        """Record time spent in a flare state (see `sim.engine.vector_flares`), when flares are laid:
        only segments with a flare hazard (rate times months) above zero are kept."""
        if not (self.keep_segments and rows.size):
            return
        state = np.broadcast_to(state, rows.shape)
        hazard = (stop - start) * self.flare_rates[state]
        kept = np.flatnonzero(hazard > 0)
        if kept.size < rows.size:  # dropped here, before the segments are put in order: fewer to place
            rows, start, stop, state, hazard = (a.take(kept) for a in (rows, start, stop, state, hazard))
        if rows.size:
            # A trajectory's segments are recorded in time order, one per call at most.
            rank = self._segments_of[rows]
            self._segments_of[rows] = rank + 1
            self._blocks["segments"].append((rows, rank, start, stop, state, hazard))

    def burst(self, rows, time, reason: int, state, effective, rebound) -> None:
        """Record corticosteroid bursts (months since entry)."""
        if rows.size:
            self._blocks["bursts"].append((
                self.cohort.strategy[rows], self._patient(rows), time, np.full(rows.size, reason),
                np.broadcast_to(state, rows.shape), effective, rebound, rows))

    def segments(self) -> tuple[np.ndarray, ...]:
        """(segments per trajectory, start, stop, state, flare hazard) of the segments with a hazard,
        trajectory after trajectory, each trajectory's in time order."""
        counts = self._segments_of
        first = np.cumsum(counts) - counts
        total = int(counts.sum())
        start, stop, hazard = np.empty(total), np.empty(total), np.empty(total)
        state = np.empty(total, dtype=np.int8)
        for rows, rank, *columns in self._blocks["segments"]:
            place = first[rows] + rank
            for ordered, column in zip((start, stop, state, hazard), columns):
                ordered[place] = column
        return counts, start, stop, state, hazard

    def close(self):
        """Join the blocks into columns (names as in `sim.engine.records`); return self."""
        self.episodes = self._episodes_in_order(self._blocks["episodes"])
        self.events = dict(zip(_EVENT_FIELDS, _join(self._blocks["events"], len(_EVENT_FIELDS))))
        bursts = _join(self._blocks["bursts"], len(_BURST_FIELDS) + 1)
        self.bursts = dict(zip(_BURST_FIELDS, bursts))
        self.patients = self._patients(bursts[-1].astype(np.intp), bursts[_BURST_FIELDS.index("rebound")])
        self._blocks = None
        return self

    def _episodes_in_order(self, blocks: list[tuple]) -> dict[str, np.ndarray]:
        """The episode columns by trajectory (strategy, patient) then episode number.

        Each trajectory's episodes take the rows after the previous trajectory's, in the
        order of their numbers: every block is placed there directly, without sorting.
        """
        c = self.cohort
        counts = c.episodes.astype(np.int64)
        first_row = np.cumsum(counts) - counts
        total = int(counts.sum())
        ordered = {
            "strategy": np.repeat(c.strategy, counts).astype(np.int16),
            "patient": np.repeat(self._patient(np.arange(c.size)), counts).astype(np.int32),
            "episode": (np.arange(total) - np.repeat(first_row, counts) + 1).astype(np.int16),
        }
        placed = [name for name in _EPISODE_TYPES if name not in ordered and name != "months_waited"]
        for name in placed:
            ordered[name] = np.empty(total, dtype=_EPISODE_TYPES[name])
        for rows, number, *columns in blocks:
            place = first_row[rows] + number - 1
            for name, column in zip(placed, columns):
                ordered[name][place] = column
        ordered["months_waited"] = np.zeros(total)
        return {name: ordered[name] for name in _EPISODE_TYPES}

    def _patients(self, burst_rows: np.ndarray, rebound: np.ndarray) -> dict[str, np.ndarray]:
        c = self.cohort
        final = np.select([c.censored_as == REASON_CODE["lost_to_followup"], c.censored_as == REASON_CODE["death"]],
                          [STATE_CODE["lost_to_followup"], STATE_CODE["dead"]], c.final)
        return {
            "strategy": c.strategy, "patient": self._patient(np.arange(c.size)), "final_state": final,
            "follow_up_months": c.end, "months_to_first_topical": c.first_topical, "lines_used": c.lines_used,
            "episodes": c.episodes, "relapses": c.relapses, "months_systemic": c.systemic,
            "months_topical": c.topical, "months_supportive_care": c.supportive, "months_waiting": np.zeros(c.size),
            "entry_month": c.entry, "months_to_first_control": c.first_control,
            "bursts": np.bincount(burst_rows, minlength=c.size).astype(np.int16),
            "rebounds": np.bincount(burst_rows, weights=rebound, minlength=c.size).astype(np.int16),
        }

    def _patient(self, rows: np.ndarray) -> np.ndarray:
        return self.cohort.numbers.first_patient + self.cohort.patient[rows]


def _join(blocks: list[tuple], width: int) -> list[np.ndarray]:
    if not blocks:
        return [np.empty(0) for _ in range(width)]
    return [np.concatenate([np.asarray(block[k]) for block in blocks]) for k in range(width)]
