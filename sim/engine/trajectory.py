"""One patient's trajectory under one strategy: its clock, its tallies, its records.

Times here are months since the patient entered (the simulation clock minus the entry
time). The trajectory keeps the intervals the patient spent controlled or not, so that
flares needing a corticosteroid burst can be laid over them when it ends: flares come
from the patient's own flare stream in operational time (the k-th flare happens when
the accumulated flare hazard reaches the k-th point of a unit-rate Poisson process),
which keeps them common to every strategy.
"""

from __future__ import annotations

import math

from sim.draws import BRIDGE_DURATION, BRIDGE_ONSET, BRIDGE_REBOUND, BRIDGE_RESPONSE
from sim.engine.records import Records
from sim.episode import EpisodePlan


class Trajectory:
    """The running account of one patient in one strategy."""

    def __init__(self, env, model, strategy, draws, records: Records):
        self.env, self.model, self.strategy, self.draws, self.records = env, model, strategy, draws, records
        self.entry = env.now
        self.end = draws.end
        self.censored_as = "lost_to_followup" if draws.lost else "death" if draws.dead else "horizon"
        self.final = None
        self.episodes = self.relapses = self.spells = 0
        self.first_topical = self.first_control = None
        self.systemic = self.topical = self.supportive = self.waiting = 0.0
        self.segments: list[tuple[float, float, str]] = []
        self._lays_flares = model.rescue is not None and bool(model.rescue.flare_rates)
        self.bursts: list[tuple] = []
        self._waited_before = 0.0

    def now(self) -> float:
        """Months since the patient entered."""
        return self.env.now - self.entry

    def observable(self, plan: EpisodePlan) -> tuple[float, str]:
        """Return the episode's observed duration and reason (censored at the end of observation)."""
        start = self.now()
        if start + plan.duration >= self.end:
            return self.end - start, self.censored_as
        return plan.duration, plan.reason

    def record_episode(self, line, treatment, start, reason, plan: EpisodePlan, retreatment, bridged) -> None:
        """Record an episode that just ended (now) and update the tallies."""
        stop = self.now()
        self.episodes += 1
        self.systemic += stop - start
        responded, events, stopper = plan.responded, plan.adverse_events, plan.stopping_event
        escalated, below_target = plan.escalated, plan.below_target
        if reason == self.censored_as:
            # Observation ended first: only what happened before it is known.
            self.final = "systemic"
            observed = stop - start
            known = plan.assessed_at <= observed
            responded = responded if known else None
            escalated, below_target = escalated and known, below_target and known
            events = [event for event in events if event[1] <= observed]
            stopper = None
        assessed = start + plan.assessed_at if responded is not None else math.nan
        if self._lays_flares:
            self._controlled_segments(start, stop, assessed, responded)
        if responded:
            self.first_control = assessed if self.first_control is None else min(self.first_control, assessed)
        self.records.episode(
            self.strategy.index, self.draws.patient, self.episodes, line, treatment, start, stop, reason,
            responded, assessed, retreatment, events, stopper, escalated, below_target, bridged,
            self._waited_before)
        self._waited_before = 0.0
        if reason == "remission" and self.first_topical is None:
            self.first_topical = stop

    def _controlled_segments(self, start, stop, assessed, responded) -> None:
        if responded is None:
            self.segments.append((start, stop, "uncontrolled"))
            return
        self.segments.append((start, assessed, "uncontrolled"))
        self.segments.append((assessed, stop, "controlled" if responded else "uncontrolled"))

    def bridge(self, start: float, group: list[float]) -> None:
        """A corticosteroid burst covering the onset of the drug starting now."""
        rescue = self.model.rescue
        effective = group[BRIDGE_RESPONSE] < rescue.response_probability
        rebound = group[BRIDGE_REBOUND] < rescue.rebound_probability
        control = start + group[BRIDGE_ONSET]
        if effective and control < self.end:
            self.first_control = control if self.first_control is None else min(self.first_control, control)
        self.bursts.append((start, "bridge", "uncontrolled", effective, rebound, group[BRIDGE_DURATION]))

    def wait_for(self, request):
        """Wait for a resource until it is granted (True) or observation ends (False)."""
        waited_from = self.now()
        remaining = self.end - waited_from
        outcome = yield request | self.env.timeout(remaining)
        waited = self.now() - waited_from
        self.waiting += waited
        self.segments.append((waited_from, waited_from + waited, "uncontrolled"))
        if request not in outcome:
            request.cancel()
            self.final = "waiting"
            return False
        self._waited_before = waited
        return True

    def topical_spell(self, treatment):
        """Stay on topical therapy until a relapse (return True) or the end (return False)."""
        relapse = self.model.relapses[treatment.relapse_variant]
        start = self.now()
        remaining = self.end - start
        if relapse is not None:
            u, wait = self.draws.relapse(self.spells, treatment.relapse_variant)
            self.spells += 1
            if u < relapse.probability and wait < remaining:
                yield self.env.timeout(wait)
                self.topical += wait
                self.relapses += 1
                self.segments.append((start, start + wait, "topical"))
                return True
        self.topical += remaining
        self.segments.append((start, self.end, "topical"))
        self.final = "topical"
        return False

    def supportive_care(self) -> None:
        """The strategy is exhausted: supportive care until the end of observation."""
        start = self.now()
        self.supportive += self.end - start
        self.segments.append((start, self.end, "supportive_care"))
        self.final = "supportive_care"

    def finish(self, lines_used: int) -> None:
        """Lay flares over the trajectory and record the patient's summary."""
        if self._lays_flares:
            self._flares()
        for time, reason, state, effective, rebound, _ in self.bursts:
            self.records.burst(self.strategy.index, self.draws.patient, time, reason, state, effective, rebound)
        final = "lost_to_followup" if self.draws.lost else "dead" if self.draws.dead else self.final
        self.records.patient(
            self.strategy.index, self.draws.patient, final, self.end, self.first_topical, lines_used,
            self.episodes, self.relapses, self.systemic, self.topical, self.supportive, self.waiting,
            self.entry, self.first_control, len(self.bursts), sum(b[4] for b in self.bursts),
        )

    def _flares(self) -> None:
        rescue = self.model.rescue
        rates = rescue.flare_rates
        numbers = self.draws.flare_numbers()
        flare = 0
        target = numbers.exponential(flare)
        for start, stop, state in self.segments:
            rate = rates.get(state, 0.0)
            position = start
            while rate > 0 and position < stop:
                time = position + target / rate
                if time >= stop:
                    target -= (stop - position) * rate
                    break
                effective, rebound = numbers.pair(flare) < (rescue.response_probability, rescue.rebound_probability)
                self.bursts.append((time, "flare", state, bool(effective), bool(rebound), math.nan))
                flare += 1
                position, target = time, numbers.exponential(flare)
        self.bursts.sort(key=lambda burst: burst[0])
