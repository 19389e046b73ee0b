"""One patient's trajectory under one strategy: its clock, its tallies, its records.

Times here are months since the patient entered. The trajectory keeps its own clock
(months on the simulation clock, entry included), advanced by exactly the delays the
engine waits, so its times are those SimPy's clock would give even when the engine runs
a patient's strategies one after the other in one process. It keeps the intervals the
patient spent controlled or not, so that flares needing a corticosteroid burst can be
laid over them when it ends: flares come from the patient's own flare stream in
operational time (the k-th flare happens when the accumulated flare hazard reaches the
k-th point of a unit-rate Poisson process), which keeps them common to every strategy.
"""

from __future__ import annotations

import math
from operator import itemgetter

from sim.draws import BRIDGE_ONSET, BRIDGE_REBOUND, BRIDGE_RESPONSE
from sim.engine.records import Records
from sim.episode import REMISSION, EpisodeRule
from sim.model import Model
from sim.patient import line_order
from sim.rules.workup import DIVERTED as DIVERTED_BY_WORKUP
from sim.rules.workup import STILL_IN_WORKUP, workup_months, workup_outcome
from sim.tables import BURST_REASONS, CENSORING_REASONS, FLARE_STATES, REASONS, STATE_CODE

TOPICAL, UNCONTROLLED, CONTROLLED, SUPPORTIVE = (
    FLARE_STATES.index(state) for state in ("topical", "uncontrolled", "controlled", "supportive_care"))
BRIDGE, FLARE = BURST_REASONS.index("bridge"), BURST_REASONS.index("flare")
(SYSTEMIC, ON_TOPICAL, ON_SUPPORTIVE_CARE, LOST_TO_FOLLOWUP, WAITING, DEAD, DIVERTED) = (
    STATE_CODE[state] for state in ("systemic", "topical", "supportive_care", "lost_to_followup", "waiting", "dead",
                                    "diverted"))
BURST_TIME = itemgetter(0)  # bursts are (time, reason, state, effective, rebound)
NAN = math.nan
CENSORED_AS = {reason: REASONS.index(reason) for reason in CENSORING_REASONS}


class ChunkRules:
    """What every trajectory of a chunk reads from the model, gathered once: the episode rules
    of each treatment, relapse and rescue numbers, flare rates by state, and the records."""

    def __init__(self, model: Model, records: Records):
        self.model, self.records = model, records
        self.episode_rules = tuple(EpisodeRule(treatment) for treatment in model.treatments)
        self.relapses = model.relapses
        self.rescue = model.rescue
        rates = model.rescue.flare_rates if model.rescue is not None else {}
        self.flare_rates = tuple(rates.get(state, 0.0) for state in FLARE_STATES)
        self.lays_flares = model.rescue is not None and bool(rates)
        self.treatments = len(model.treatments)
        self.to_target = tuple(strategy.target_assessment is not None for strategy in model.strategies)
        # The line order of each strategy that does not draw its first line.
        self.orders = tuple(None if strategy.first_line_weights is not None else line_order(strategy, model.treatments)
                            for strategy in model.strategies)


class Trajectory:
    """The running account of one patient in one strategy (`enter` starts a patient's)."""

    __slots__ = (
        "_waited_before",
        "bursts",
        "censored_as",
        "clock",
        "draws",
        "end",
        "episode_rows",
        "entry",
        "episodes",
        "final",
        "first_control",
        "first_topical",
        "lays_flares",
        "patient",
        "records",
        "relapses",
        "rules",
        "segments",
        "spells",
        "strategy",
        "supportive",
        "systemic",
        "topical",
        "waiting",
    )

    def __init__(self, rules: ChunkRules, strategy: int):
        self.rules, self.records, self.strategy = rules, rules.records, strategy
        self.episode_rows = rules.records.episode_rows[strategy]
        self.lays_flares = rules.lays_flares
        self.segments: list[tuple[float, float, int]] = []
        self.bursts: list[tuple] = []

    def enter(self, draws) -> None:
        """Start the account of the patient with `draws` (the previous one, if any, finished)."""
        # One account per strategy serves a process's patients in turn: allocating and
        # freeing one per trajectory cost more than resetting it.
        self.draws = draws
        self.patient = draws.patient
        self.clock = self.entry = draws.entry
        self.end = draws.end
        self.censored_as = CENSORED_AS["lost_to_followup" if draws.lost else "death" if draws.dead else "horizon"]
        self.final = None
        self.episodes = self.relapses = self.spells = 0
        self.first_topical = self.first_control = None
        self.systemic = self.topical = self.supportive = self.waiting = 0.0
        self.segments.clear()
        self.bursts.clear()
        self._waited_before = 0.0

    def now(self) -> float:
        """Months since the patient entered."""
        return self.clock - self.entry

    def work_up(self) -> float:
        """The work-up at entry (`sim.rules.workup`): return the months it is observed. When it
        ends the trajectory (a factor found: back to topical therapy for good; or observation
        ends during it), `final` is set."""
        u, duration = self.draws.workup
        months = workup_months(duration, self.end)
        outcome = workup_outcome(u, self.rules.model.workup.found_probability, duration, self.end)
        if self.lays_flares:
            self.segments.append((0.0, months, UNCONTROLLED))
        if outcome == DIVERTED_BY_WORKUP:
            self.first_topical = months
            self.topical += self.end - months
            if self.lays_flares:
                self.segments.append((months, self.end, TOPICAL))
            self.final = DIVERTED
        elif outcome == STILL_IN_WORKUP:
            self.final = WAITING
        return months

    def observable(self, plan: tuple) -> tuple[float, float, int]:
        """Return the start (months since entry), duration (months) and reason code of an episode
        starting now, censored at the end of observation."""
        start = self.clock - self.entry
        duration = plan[0]
        if start + duration >= self.end:
            return start, self.end - start, self.censored_as
        return start, duration, plan[1]

    def record_episode(self, line, treatment, start, reason, plan: tuple, retreatment, bridged) -> None:
        """Record an episode that just ended (now) and update the tallies."""
        stop = self.clock - self.entry
        self.episodes += 1
        self.systemic += stop - start
        _, _, responded, assessed_at, events, stopper, escalated, below_target = plan
        if reason == self.censored_as:
            # Observation ended first: only what happened before it is known.
            self.final = SYSTEMIC
            observed = stop - start
            known = assessed_at <= observed
            responded = responded if known else None
            escalated, below_target = escalated and known, below_target and known
            events = [event for event in events if event[1] <= observed]
            stopper = None
        if responded is None:
            assessed, response = math.nan, -1
            if self.lays_flares:
                self.segments.append((start, stop, UNCONTROLLED))
        else:
            assessed, response = start + assessed_at, int(responded)
            if self.lays_flares:
                self.segments += ((start, assessed, UNCONTROLLED),
                                  (assessed, stop, CONTROLLED if responded else UNCONTROLLED))
            if responded and (self.first_control is None or assessed < self.first_control):
                self.first_control = assessed
        self.episode_rows.append((
            self.patient, self.episodes, line, treatment.index, start, stop, reason, response, assessed,
            retreatment, len(events), -1 if stopper is None else stopper, escalated, below_target, bridged,
            self._waited_before))
        if events:
            self.records.adverse_events(self.strategy, self.patient, self.episodes, treatment.index, start, events,
                                        stopper)
        self._waited_before = 0.0
        if reason == REMISSION and self.first_topical is None:
            self.first_topical = stop

    def bridge(self, start: float, group) -> None:
        """A corticosteroid burst covering the onset of the drug starting now."""
        rescue = self.rules.rescue
        effective = group[BRIDGE_RESPONSE] < rescue.response_probability
        rebound = group[BRIDGE_REBOUND] < rescue.rebound_probability
        control = start + group[BRIDGE_ONSET]
        if effective and control < self.end:
            self.first_control = control if self.first_control is None else min(self.first_control, control)
        self.bursts.append((start, BRIDGE, UNCONTROLLED, effective, rebound))

    def wait_for(self, env, request):
        """Wait for a resource until it is granted (True) or observation ends (False)."""
        waited_from = self.now()
        remaining = self.end - waited_from
        outcome = yield request | env.timeout(remaining)
        self.clock = env.now
        waited = self.now() - waited_from
        self.waiting += waited
        if self.lays_flares:
            self.segments.append((waited_from, waited_from + waited, UNCONTROLLED))
        if request not in outcome:
            request.cancel()
            self.final = WAITING
            return False
        self._waited_before = waited
        return True

    def relapse_wait(self, treatment) -> float | None:
        """Start a spell on topical therapy after `treatment`: return the months until a relapse,
        or None when none comes before the end of observation (the trajectory then ends)."""
        relapse = self.rules.relapses[treatment.relapse_variant]
        start = self.clock - self.entry
        remaining = self.end - start
        if relapse is not None:
            u, wait = self.draws.relapse(self.spells, treatment.relapse_variant)
            self.spells += 1
            if u < relapse.probability and wait < remaining:
                return wait
        self.topical += remaining
        if self.lays_flares:
            self.segments.append((start, self.end, TOPICAL))
        self.final = ON_TOPICAL
        return None

    def relapsed(self, start: float, wait: float) -> None:
        """The spell on topical therapy that began at `start` (months since entry) ended in a
        relapse after `wait` months (now)."""
        self.topical += wait
        self.relapses += 1
        if self.lays_flares:
            self.segments.append((start, start + wait, TOPICAL))

    def supportive_care(self) -> None:
        """The strategy is exhausted: supportive care until the end of observation."""
        start = self.clock - self.entry
        self.supportive += self.end - start
        if self.lays_flares:
            self.segments.append((start, self.end, SUPPORTIVE))
        self.final = ON_SUPPORTIVE_CARE

    def finish(self, lines_used: int) -> None:
        """Lay flares over the trajectory and record the patient's summary."""
        bursts = self.bursts
        if self.lays_flares:
            bridges = len(bursts)
            self._flares()
            if bridges and len(bursts) > bridges:  # flares come in order, but after the bridges
                bursts.sort(key=BURST_TIME)
        records, strategy, patient = self.records, self.strategy, self.patient
        rebounds = records.bursts_of(strategy, patient, bursts) if bursts else 0
        draws = self.draws
        first_topical, first_control = self.first_topical, self.first_control
        # A row of `_PATIENT_FIELDS` without the strategy (see `Records`).
        records.patient_rows[strategy].append((
            patient, LOST_TO_FOLLOWUP if draws.lost else DEAD if draws.dead else self.final, self.end,
            NAN if first_topical is None else first_topical, lines_used, self.episodes, self.relapses,
            self.systemic, self.topical, self.supportive, self.waiting, self.entry,
            NAN if first_control is None else first_control, len(bursts), rebounds))

    def _flares(self) -> None:
        rates = self.rules.flare_rates
        rescue = self.rules.rescue
        responds, rebounds = rescue.response_probability, rescue.rebound_probability
        numbers = self.draws.flare_numbers()
        gaps, responses, rebound_draws = numbers.gaps, numbers.responses, numbers.rebounds
        add = self.bursts.append
        flare, target = 0, gaps[0]
        for start, stop, state in self.segments:
            rate = rates[state]
            if not (rate > 0 and start < stop):
                continue
            position = start
            while True:
                time = position + target / rate
                if time >= stop:
                    target -= (stop - position) * rate
                    break
                add((time, FLARE, state, responses[flare] < responds, rebound_draws[flare] < rebounds))
                flare += 1
                if flare == len(gaps):
                    numbers.more()
                target = gaps[flare]
                position = time
