"""The vector engine: every trajectory of a chunk advanced together as NumPy arrays.

A trajectory is one patient under one strategy; a chunk of n patients under S strategies
is S*n trajectories, strategy-major (trajectory j is patient j % n under strategy j // n).
Each pass of the loop runs one treatment episode, and what follows it (a topical spell,
a relapse, the choice of the next line), for every trajectory still under observation,
until each has reached the end of its observation.

It applies the rules of the DES engine (`sim.engine.des`, `sim.engine.trajectory`,
`sim.patient`, `sim.episode`) to the same slots of the same random numbers, in the same
floating-point operations, so both engines write identical tables for the same seed.
Flares needing a corticosteroid burst come from the same numbers too, laid in another
order of additions (`sim.engine.vector_flares`): their times agree to about 1e-9 months.

Limited resources make patients wait for each other; only the DES simulates them.
"""

from __future__ import annotations

import itertools

import numpy as np

from sim.draws import ASSESS, BRIDGE_ONSET, BRIDGE_REBOUND, BRIDGE_RESPONSE, Layout
from sim.engine import limited_resources_refusal
from sim.engine.vector_draws import ChunkNumbers, EpisodeSlots
from sim.engine.vector_episodes import plan_episodes
from sim.engine.vector_flares import flare_rates, lay_flares
from sim.engine.vector_records import SUPPORTIVE, TOPICAL, UNCONTROLLED, VectorRecords
from sim.model import Model, adjust_odds
from sim.tables import BURST_REASONS, CENSORING_REASONS, FAILURE_REASONS, REASON_CODE, STATE_CODE

#: Patients per chunk when the caller does not say (results do not depend on it).
CHUNK_PATIENTS = 32_768


def _reasons_among(reasons) -> np.ndarray:
    """Whether each reason code is one of `reasons`, indexed by code (a lookup is cheaper than `np.isin`);
    the extra last entry answers code -1."""
    among = np.zeros(len(REASON_CODE) + 1, dtype=bool)
    among[[REASON_CODE[reason] for reason in reasons]] = True
    return among


FAILED = _reasons_among(FAILURE_REASONS)
CENSORED = _reasons_among(CENSORING_REASONS)


class LimitedResourcesError(ValueError):
    """The scenario has resources of finite capacity, which only the DES engine simulates."""


def check_supported(model: Model) -> None:
    """Raise `LimitedResourcesError` if the vector engine cannot simulate `model`."""
    if model.limited_resources:
        raise LimitedResourcesError(limited_resources_refusal(model, "vector"))


def simulate_chunk(model: Model, layout: Layout, numbers: ChunkNumbers) -> VectorRecords:
    """Simulate every strategy for the patients of `numbers`; return their records."""
    check_supported(model)
    cohort = Cohort(model, numbers)
    active = cohort.advance_line(cohort.work_up(np.arange(cohort.size)))
    while active.size:
        active = cohort.step(active)
    return cohort.finish()


class Cohort:
    """The trajectories of a chunk: where each stands in its strategy, its clock and tallies.

    Clocks follow the DES: `clock` is the simulation clock (months, entry included) and
    times since entry are `clock - entry`, as `Trajectory.now` computes them.
    """

    def __init__(self, model: Model, numbers: ChunkNumbers):
        self.model, self.numbers = model, numbers
        n, strategies, treatments = numbers.count, model.strategies, model.treatments
        self.size = n * len(strategies)
        self.patient = np.tile(np.arange(n), len(strategies))
        self.strategy = np.repeat(np.arange(len(strategies)), n)
        self.entry = np.tile(numbers.entries, len(strategies))
        self.end = np.tile(numbers.ends, len(strategies))
        lost, dead = np.tile(numbers.lost, len(strategies)), np.tile(numbers.dead, len(strategies))
        self.censored_as = np.select([lost, dead], [REASON_CODE["lost_to_followup"], REASON_CODE["death"]],
                                     REASON_CODE["horizon"]).astype(np.int8)
        self.clock = self.entry.copy()
        self.order = _line_orders(model, numbers)
        self.rules = StrategyRules(model)
        self.position = np.full(self.size, -1, dtype=np.int16)
        self.failed = np.zeros((self.size, len(treatments)), dtype=bool)
        self.line_number = np.zeros((self.size, len(treatments)), dtype=np.int16)
        self.occurrences = np.zeros((self.size, len(treatments)), dtype=np.int16)
        self.treatment = np.full(self.size, -1, dtype=np.int16)
        self.retreatment = np.zeros(self.size, dtype=bool)
        self.lines_used, self.episodes, self.relapses, self.spells = (np.zeros(self.size, dtype=np.int16) for _ in range(4))
        self.first_topical, self.first_control = np.full(self.size, np.nan), np.full(self.size, np.nan)
        self.systemic, self.topical, self.supportive = (np.zeros(self.size) for _ in range(3))
        self.final = np.full(self.size, -1, dtype=np.int8)
        self.records = VectorRecords(self, flare_rates(model))

    def now(self, rows: np.ndarray) -> np.ndarray:
        """Months since entry of the trajectories `rows`."""
        return self.clock[rows] - self.entry[rows]

    # -- the loop ---------------------------------------------------------------------

    def step(self, rows: np.ndarray) -> np.ndarray:
        """Run one episode (and what follows it) for `rows`; return those still observed."""
        exhausted = self.treatment[rows] < 0
        self.supportive_care(rows[exhausted])
        rows = rows[~exhausted]
        if not rows.size:
            return rows
        reason = self.episode(rows)
        on = ~CENSORED[reason]
        self.final[rows[~on]] = STATE_CODE["systemic"]
        rows, reason = rows[on], reason[on]
        remission = reason == REASON_CODE["remission"]
        relapsed = self.topical_spell(rows[remission])
        retreats = self.may_retreat(relapsed)
        retreated = relapsed[retreats]
        self.retreatment[retreated] = True
        failed = rows[FAILED[reason]]
        self.failed[failed, self.treatment[failed]] = True
        moving = np.concatenate([rows[~remission], relapsed[~retreats]])
        self.advance_line(moving)
        return np.concatenate([moving, retreated])

    def advance_line(self, rows: np.ndarray) -> np.ndarray:
        """Move `rows` to their next eligible line (treatment -1: strategy exhausted); return `rows`."""
        found = np.full(rows.size, -1, dtype=np.int16)
        position = self.rules.lines[self.strategy[rows]].astype(np.int16)
        current = self.position[rows]
        for k in range(self.order.shape[1]):
            candidate = self.order[rows, k]
            open_ = np.flatnonzero((found < 0) & (current < k) & (candidate >= 0))
            if not open_.size:
                continue
            hit = open_[self.eligible(rows[open_], candidate[open_])]
            found[hit], position[hit] = candidate[hit], k
        self.position[rows], self.treatment[rows], self.retreatment[rows] = position, found, False
        return rows

    def eligible(self, rows: np.ndarray, treatment: np.ndarray) -> np.ndarray:
        """Whether each trajectory may start `treatment` now (`PathwayPosition.eligible`)."""
        ok = self.numbers.eligible[self.patient[rows], treatment] & ~self.failed[rows, treatment]
        needs = self.rules.after_failure_of[treatment]
        if needs.any():
            ok &= ~(needs & ~self.failed[rows]).any(axis=1)
        return ok

    def may_retreat(self, rows: np.ndarray) -> np.ndarray:
        """Where a relapsed trajectory restarts the drug that worked (`des._may_retreat`)."""
        treatment, strategy = self.treatment[rows], self.strategy[rows]
        allowed = self.rules.retreats[strategy, treatment]
        return allowed & self.eligible(rows, treatment)

    # -- episodes ---------------------------------------------------------------------

    def episode(self, rows: np.ndarray) -> np.ndarray:
        """Run one episode of each trajectory's current treatment; return the reasons it ended."""
        treatment = self.treatment[rows].astype(np.intp)
        line = self._start_line(rows, treatment)
        occurrence = self.occurrences[rows, treatment]
        self.occurrences[rows, treatment] = occurrence + 1
        start = self.now(rows)
        episode = EpisodeColumns(rows.size)
        for t in distinct(treatment):
            group = np.flatnonzero(treatment == t)
            self._plan(episode, group, rows[group], int(t), line[group], occurrence[group], start[group])
        end = self.end[rows]
        censored = start + episode.duration >= end
        duration = np.where(censored, end - start, episode.duration)
        reason = np.where(censored, self.censored_as[rows], episode.reason).astype(np.int8)
        self.clock[rows] += duration
        stop = self.now(rows)
        self.systemic[rows] += stop - start
        self.episodes[rows] += 1
        episode.censor(censored, stop - start)
        assessed = np.where(episode.known, start + episode.assessed_at, np.nan)
        responders = episode.known & episode.responded
        self.first_control[rows[responders]] = np.fmin(self.first_control[rows[responders]], assessed[responders])
        self.records.episode(rows, line, treatment, start, stop, reason, assessed, episode)
        to_topical = (reason == REASON_CODE["remission"]) & np.isnan(self.first_topical[rows])
        self.first_topical[rows[to_topical]] = stop[to_topical]
        return reason

    def _start_line(self, rows: np.ndarray, treatment: np.ndarray) -> np.ndarray:
        """Line number of each episode: a new treatment takes the next number, re-treatment keeps its own."""
        line = self.line_number[rows, treatment]
        new = line == 0
        if new.any():
            self.lines_used[rows[new]] += 1
            line = np.where(new, self.lines_used[rows], line)
            self.line_number[rows[new], treatment[new]] = line[new]
        return line

    def _plan(self, episode, group, rows, t, line, occurrence, start) -> None:
        """Plan the episodes of treatment `t` (positions `group` of the step) and apply a bridge."""
        treatment = self.model.treatments[t]
        patients = self.patient[rows]
        slots = EpisodeSlots(self.numbers, treatment, patients, occurrence)
        strategy = self.strategy[rows]
        assess = self._assessment_times(slots, treatment, strategy)
        target = self.rules.treat_to_target[strategy]
        probability = self._response_probability(treatment, patients, line)
        plan = plan_episodes(treatment, slots, probability, assess, target)
        episode.fill(group, plan, self.retreatment[rows])
        bridged = self.rules.bridged[strategy, t]
        if bridged.any():
            episode.bridged[group] = bridged
            self._bridge(rows[bridged], start[bridged], slots, np.flatnonzero(bridged))

    def _assessment_times(self, slots: EpisodeSlots, treatment, strategy: np.ndarray) -> np.ndarray:
        """The treatment's own assessment time, or the strategy's under treat-to-target (months)."""
        uniform = slots.uniform(ASSESS)
        assess = treatment.assess_at.ppf(uniform)
        for s in self.rules.to_target:
            here = strategy == s
            if here.any():
                assess[here] = self.model.strategies[s].target_assessment.ppf(uniform[here])
        return assess

    def _response_probability(self, treatment, patients: np.ndarray, line: np.ndarray) -> np.ndarray:
        """The response probability after covariate and line modifiers (`PatientDraws.response_probability`)."""
        p = self.numbers.response[patients, treatment.index]
        for modifier in treatment.line_modifiers:
            holds = modifier.condition.holds(line)
            if modifier.probability is not None:
                p = np.where(holds, modifier.probability, p)
            else:
                p = np.where(holds, _adjusted_odds(p, modifier.odds_ratio), p)
        return p

    def _bridge(self, rows, start, slots: EpisodeSlots, where: np.ndarray) -> None:
        """Corticosteroid bursts covering the onset of drugs starting now (`Trajectory.bridge`)."""
        rescue = self.model.rescue
        effective = slots.uniform(BRIDGE_RESPONSE)[where] < rescue.response_probability
        rebound = slots.uniform(BRIDGE_REBOUND)[where] < rescue.rebound_probability
        control = start + slots.time(BRIDGE_ONSET, rescue.onset)[where]
        controlled = effective & (control < self.end[rows])
        self.first_control[rows[controlled]] = np.fmin(self.first_control[rows[controlled]], control[controlled])
        self.records.burst(rows, start, BURST_REASONS.index("bridge"), UNCONTROLLED, effective, rebound)

    # -- between episodes -------------------------------------------------------------

    def work_up(self, rows: np.ndarray) -> np.ndarray:
        """The work-up at entry (`sim.rules.workup`, element by element); return the rows that go
        on to systemic therapy, their clocks at its end. Diverted rows stay on topical therapy."""
        if self.numbers.workup is None:
            return rows
        strategies = len(self.model.strategies)
        u, duration = (np.tile(column, strategies)[rows] for column in self.numbers.workup)
        end = self.end[rows]
        months = np.minimum(duration, end)
        still = duration >= end
        diverted = ~still & (u < self.model.workup.found_probability)
        self.records.segment(rows, np.zeros(rows.size), months, UNCONTROLLED)
        gone = rows[diverted]
        self.first_topical[gone] = months[diverted]
        self.topical[gone] += end[diverted] - months[diverted]
        self.records.segment(gone, months[diverted], end[diverted], TOPICAL)
        self.final[gone] = STATE_CODE["diverted"]
        self.final[rows[still]] = STATE_CODE["waiting"]
        on = ~still & ~diverted
        self.clock[rows[on]] += months[on]
        return rows[on]


    def topical_spell(self, rows: np.ndarray) -> np.ndarray:
        """Topical therapy after a remission, until a relapse or the end; return the relapsed rows."""
        start = self.now(rows)
        remaining = self.end[rows] - start
        relapsed = np.zeros(rows.size, dtype=bool)
        wait = np.zeros(rows.size)
        variant = self.rules.relapse_variant[self.treatment[rows]]
        for v in distinct(variant):
            relapse = self.model.relapses[v]
            if relapse is None:
                continue
            here = np.flatnonzero(variant == v)
            spell = self.spells[rows[here]]
            decide, wait[here] = self.numbers.relapse(self.patient[rows[here]], spell, int(v))
            self.spells[rows[here]] = spell + 1
            relapsed[here] = (decide < relapse.probability) & (wait[here] < remaining[here])
        back, stays = rows[relapsed], rows[~relapsed]
        self.clock[back] += wait[relapsed]
        self.topical[back] += wait[relapsed]
        self.relapses[back] += 1
        self.records.segment(back, start[relapsed], start[relapsed] + wait[relapsed], TOPICAL)
        self.topical[stays] += remaining[~relapsed]
        self.records.segment(stays, start[~relapsed], self.end[stays], TOPICAL)
        self.final[stays] = STATE_CODE["topical"]
        return back

    def supportive_care(self, rows: np.ndarray) -> None:
        """The strategy is exhausted: supportive care until the end of observation."""
        start = self.now(rows)
        self.supportive[rows] += self.end[rows] - start
        self.records.segment(rows, start, self.end[rows], SUPPORTIVE)
        self.final[rows] = STATE_CODE["supportive_care"]

    def finish(self) -> VectorRecords:
        """Lay flares over the trajectories and record each trajectory's summary."""
        if self.records.keep_segments:
            lay_flares(self)
        return self.records.close()


class EpisodeColumns:
    """What the episodes of one step planned and what was seen of them, one entry per trajectory."""

    def __init__(self, count: int):
        self.duration = np.empty(count)
        self.reason = np.empty(count, dtype=np.int8)
        self.responded, self.known = np.empty(count, dtype=bool), np.empty(count, dtype=bool)
        self.escalated, self.below_target = np.empty(count, dtype=bool), np.empty(count, dtype=bool)
        self.retreatment, self.bridged = np.empty(count, dtype=bool), np.zeros(count, dtype=bool)
        self.assessed_at = np.empty(count)
        self.stopper = np.empty(count, dtype=np.int16)
        self.plans: list[tuple[np.ndarray, object]] = []  # (positions, EpisodePlans) per treatment
        self.censored = np.zeros(count, dtype=bool)  # set by `censor`, with the months observed
        self.observed = np.empty(count)

    def fill(self, group: np.ndarray, plan, retreatment: np.ndarray) -> None:
        """Copy a treatment's plans into the step's positions `group`."""
        for name in ("duration", "reason", "responded", "known", "escalated", "below_target", "assessed_at"):
            getattr(self, name)[group] = getattr(plan, name)
        self.stopper[group] = plan.stopping_event
        self.retreatment[group] = retreatment
        self.plans.append((group, plan))

    def censor(self, censored: np.ndarray, observed: np.ndarray) -> None:
        """Keep only what was seen before the end of observation (`Trajectory.record_episode`)."""
        self.known &= ~censored | (self.assessed_at <= observed)
        self.escalated &= self.known
        self.below_target &= self.known
        self.stopper[censored] = -1
        self.observed, self.censored = observed, censored


def distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values of an array of small non-negative integers, ascending (no sort)."""
    return np.flatnonzero(np.bincount(values)) if len(values) else np.empty(0, dtype=np.intp)


def _adjusted_odds(p: np.ndarray, odds_ratio: float) -> np.ndarray:
    """`sim.model.adjust_odds` element by element (the same operations)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = p / (1.0 - p) * odds_ratio
        adjusted = odds / (1.0 + odds)
    return np.where(p >= 1.0, adjust_odds(1.0, odds_ratio), adjusted)


class StrategyRules:
    """A model's strategy rules as lookup arrays indexed by strategy and treatment."""

    def __init__(self, model: Model):
        strategies, treatments = model.strategies, model.treatments
        shape = (len(strategies), len(treatments))
        self.lines = np.array([len(s.lines) for s in strategies])
        self.treat_to_target = np.array([s.target_assessment is not None for s in strategies])
        self.to_target = np.flatnonzero(self.treat_to_target)
        self.bridged = np.zeros(shape, dtype=bool)
        self.retreats = np.zeros(shape, dtype=bool)
        for s in strategies:
            self.bridged[s.index, list(s.bridged)] = True
            if s.on_relapse == "retreat":
                self.retreats[s.index] = [s.retreat_only is None or t in s.retreat_only for t in range(len(treatments))]
        self.after_failure_of = np.zeros((len(treatments), len(treatments)), dtype=bool)
        for t in treatments:
            self.after_failure_of[t.index, list(t.after_failure_of)] = True
        self.relapse_variant = np.array([t.relapse_variant for t in treatments])


def _line_orders(model: Model, numbers: ChunkNumbers) -> np.ndarray:
    """Each trajectory's order of lines (treatment indices, -1 beyond its strategy's lines)."""
    width = max(len(s.lines) for s in model.strategies)
    orders = []
    first_line_u = numbers.slots.slot(numbers.layout.first_line)
    for strategy in model.strategies:
        order = np.full((numbers.count, width), -1, dtype=np.int16)
        order[:, :len(strategy.lines)] = strategy.lines
        if strategy.first_line_weights is not None:
            cumulative = np.array(list(itertools.accumulate(strategy.first_line_weights)))
            chosen = np.searchsorted(cumulative, first_line_u * cumulative[-1], side="right")
            chosen = np.minimum(chosen, len(cumulative) - 1)
            lines = np.asarray(strategy.lines)
            order[:, 0] = lines[chosen]
            rest = np.array([[line for line in strategy.lines if line != lines[c]] for c in range(len(lines))])
            order[:, 1:len(lines)] = rest[chosen]
        orders.append(order)
    return np.concatenate(orders)
