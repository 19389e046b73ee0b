"""The reference simulator: one patient at a time, one strategy at a time, events in time order.

The rules, as the documents state them (README.md "Writing a scenario", DESIGN.md "The
clinical model", the top docstring of sim/episode.py), and how this module reads them
where they leave room (each reading is marked "Reading:" where it is applied):

- A patient enters when systemic therapy is indicated and is observed until the first of:
  the horizon, the end of a per-patient `follow_up`, the age `observed_until_age`
  (counted from the age covariate), loss to follow-up, death from the life table.
  Loss ends with reason `lost_to_followup`, death with `death`, the others with `horizon`.
- Lines are met in the order listed; a strategy's `first_line` mix draws the first and the
  others follow in their listed order. An ineligible treatment is skipped (age group,
  `eligibility.when` covariate conditions, `after_failure_of`).
- An episode: response assessed at `assess_at` (under treat-to-target, the strategy's
  `assess_at`); a non-responder stops there (`nonresponse`) unless escalated (then
  reassessed `reassess_after` later with the escalated response probability); under
  treat-to-target a responder below `target_response` stops at the assessment
  (`nonresponse`); a responder stays for the course (from the start, at least until the
  assessment), possibly capped; at its end the fate is `remission`, `switch` or
  `continue` (stays on); a capped drug cannot be continued: a `continue` fate ends at the
  cap as `remission` or `switch` in the proportions of those two fates; a responder can
  lose response some time after the assessment; an adverse event that stops the drug ends
  the episode at its onset; adverse events after the episode has ended never happen.
- Non-response, adverse-event stops and losses of response are failures; they and
  switches move the patient to the next line; a remission returns the patient to topical
  therapy, from which a relapse (the treatment's own `relapse` or the scenario's) brings
  the patient back: to the drug that worked (`on_relapse: retreat`, keeping its line;
  with `retreat_only`, only the drugs listed) or to the next line.
- A `workup` at entry (before any strategy: the same for all): it lasts its `duration`;
  with probability `found` a treatable factor is found and the patient goes back to
  topical therapy at its end without a systemic drug, for good (final state `diverted`);
  the others start the first line at its end. Reading: a patient whose observation ends
  during the work-up has no episode and ends `waiting` (for systemic therapy); the time
  in the work-up is `uncontrolled` for flares.
- A strategy exhausted: supportive care until the end of observation.
- Corticosteroid bursts: a bridge at the start of every episode of a bridged drug; flare
  bursts at the rate of the state the patient is in (`topical`, `uncontrolled` on a drug
  before or without response, `controlled` a responder after the assessment,
  `supportive_care`), each effective with the rescue's response probability and followed
  by a rebound with its rebound probability. Bursts change nothing in the pathway.

Times are months since the patient's entry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from reference.sampling import choose
from reference.scenario import Reference, Strategy, Treatment, adjusted_response, read, years_to_death

INFINITY = math.inf
FAILURES = ("nonresponse", "adverse_event", "loss_of_response")


@dataclass
class Patient:
    """One virtual patient: covariates and when (and why) observation ends (months since entry)."""

    number: int
    covariates: dict
    observed_months: float
    end_reason: str  # horizon, lost_to_followup or death
    workup_months: float = 0.0  # how long the work-up at entry takes (0: none)
    workup_found: bool = False  # it finds a treatable factor


@dataclass
class Episode:
    """How an episode would end if observed long enough (months since its start)."""

    duration: float
    reason: str | None
    responded: bool
    assessed: float
    escalated: bool
    below_target: bool
    adverse_events: list = field(default_factory=list)  # (name, onset months, stops)


def draw_patient(ref: Reference, number: int, rng: np.random.Generator) -> Patient:
    """Draw a patient's covariates and the end of observation."""
    covariates = {}
    for c in ref.covariates:
        if c.kind == "numeric":
            covariates[c.name] = c.distribution.draw(rng)
        elif c.kind == "boolean":
            covariates[c.name] = bool(rng.random() < c.probability)
        else:
            covariates[c.name] = c.levels[choose(c.weights, rng)]
    # Reading: the horizon is counted from each patient's entry, whenever the patient
    # arrives (`population.arrival` only spaces entries on the simulation clock, which
    # matters for limited resources alone). The README does not say; the first reading here,
    # the horizon as the end of the simulation clock (a patient arriving at 2 years then
    # observed for the horizon minus 2 years), disagreed with both engines on
    # capacity_biologics and every_rule (mean follow-up 82 vs 109 months).
    ends = [(ref.horizon_months, "horizon")]
    if ref.follow_up is not None:
        ends.append((ref.follow_up.draw(rng), "horizon"))
    if ref.observed_until_age_months is not None:
        ends.append((ref.observed_until_age_months - 12.0 * covariates[ref.age_covariate], "horizon"))
    if ref.loss_to_followup is not None:
        ends.append((ref.loss_to_followup.draw(rng), "lost_to_followup"))
    if ref.life_table_qx is not None:
        age = covariates[ref.mortality_age_covariate]
        ends.append((12.0 * years_to_death(age, ref.life_table_qx, rng.random()), "death"))
    observed, reason = min(ends, key=lambda e: e[0])
    patient = Patient(number, covariates, max(observed, 0.0), reason)
    if ref.workup is not None:
        patient.workup_found = bool(rng.random() < ref.workup.found)
        patient.workup_months = ref.workup.duration.draw(rng)
    return patient


def plan_episode(t: Treatment, p_response: float, assess_at: float, to_target: bool,
                 rng: np.random.Generator) -> Episode:
    """How an episode of `t` ends (months from its start), from fresh draws."""
    assessed = assess_at
    responded = rng.random() < p_response
    escalated = below_target = False
    if not responded and t.escalation is not None and rng.random() < t.escalation[0]:
        escalated = True
        assessed += t.escalation[1].draw(rng)
        responded = rng.random() < t.escalation[2]
    # Reading: the target is checked at the assessment that found the response (after an
    # escalation, the reassessment).
    if responded and to_target and t.target is not None and rng.random() >= t.target:
        responded, below_target = False, True
    if responded:
        end, reason = _course_end(t, rng)
        end = max(end, assessed)
        if t.loss_of_response is not None:
            lost = assessed + t.loss_of_response.draw(rng)
            if lost < end:
                end, reason = lost, "loss_of_response"
    else:
        end, reason = assessed, "nonresponse"
    events = []
    for a in t.adverse_events:
        if rng.random() < a.probability:
            onset = a.onset.draw(rng)
            stops = rng.random() < a.stops
            events.append((a.name, onset, stops))
    stopping = [onset for _, onset, stops in events if stops]
    if stopping and min(stopping) < end:
        end, reason = min(stopping), "adverse_event"
    happened = [e for e in events if e[1] <= end]
    return Episode(end, reason, responded, assessed, escalated, below_target, happened)


def _course_end(t: Treatment, rng: np.random.Generator) -> tuple[float, str | None]:
    remission, switch, _ = t.fates
    fate = ("remission", "switch", "continue")[choose(t.fates, rng)]
    cap = INFINITY if t.cap is None else t.cap.draw(rng)
    if fate == "continue":
        if cap == INFINITY:
            return INFINITY, None
        # Reading: with remission = switch = 0 the proportions are undefined; the README
        # says nothing, and a capped drug that cannot be continued is taken to end in a
        # return to topical therapy.
        ended = remission + switch
        return cap, "remission" if ended == 0 or rng.random() < remission / ended else "switch"
    course = INFINITY if t.course is None else t.course.draw(rng)
    end = min(course, cap)
    return end, (fate if end < INFINITY else None)


class Walk:
    """One patient's trajectory under one strategy, recorded as rows."""

    def __init__(self, ref: Reference, strategy: Strategy, patient: Patient, rng: np.random.Generator):
        self.ref, self.strategy, self.patient, self.rng = ref, strategy, patient, rng
        self.end = patient.observed_months
        self.episodes: list[dict] = []
        self.segments: list[tuple[float, float, str]] = []  # (from, to, flare state)
        self.bursts: list[dict] = []
        self.failed: set[str] = set()
        self.line_of: dict[str, int] = {}
        self.first_topical = None
        self.first_control = None
        self.relapses = 0
        self.final_state = "systemic"

    def order(self) -> list[str]:
        """The treatments in the order this patient meets them (a drawn first line first)."""
        lines = list(self.strategy.lines)
        if self.strategy.first_line is None:
            return lines
        first = lines[choose(self.strategy.first_line, self.rng)]
        return [first] + [line for line in lines if line != first]

    def eligible(self, name: str) -> bool:
        """Whether the patient may start `name` now."""
        t = self.ref.treatments[name]
        if t.age_groups is not None and self.ref.age_group not in t.age_groups:
            return False
        if not all(c.holds(self.patient.covariates) for c in t.eligible_when):
            return False
        # Reading: "after_failure_of" needs every listed drug to have failed before
        # (non-response, an adverse-event stop or a loss of response; a switch while
        # controlled is not a failure). The bundled scenarios list one drug.
        return all(other in self.failed for other in t.after_failure_of)

    def run(self) -> None:
        """Walk the strategy from entry to the end of observation."""
        order, position, now = self.order(), -1, self.work_up()
        if now is None:
            return
        retreat = None
        while True:
            if retreat is None:
                position += 1
                while position < len(order) and not self.eligible(order[position]):
                    position += 1
                if position == len(order):
                    self.segment(now, self.end, "supportive_care")
                    self.final_state = "supportive_care"
                    return
                name = order[position]
                # Reading: the line number counts the lines this patient has started
                # (skipped treatments take none), "re-treatment keeps its line".
                self.line_of[name] = len(self.line_of) + 1
            else:
                name = retreat
            stop, reason = self.episode(name, now, retreatment=retreat is not None)
            if reason is None:  # censored: observation ended on the drug
                return
            now, retreat = stop, None
            if reason in FAILURES:
                self.failed.add(name)
            if reason != "remission":
                continue
            if self.first_topical is None:
                self.first_topical = now
            relapse = self.ref.treatments[name].relapse or self.ref.relapse
            gap = INFINITY
            if relapse is not None and self.rng.random() < relapse.probability:
                gap = relapse.time.draw(self.rng)
            if now + gap >= self.end:
                self.segment(now, self.end, "topical")
                self.final_state = "topical"
                return
            self.segment(now, now + gap, "topical")
            now += gap
            self.relapses += 1
            only = self.strategy.retreat_only
            if self.strategy.on_relapse == "retreat" and (only is None or name in only):
                retreat = name

    def work_up(self) -> float | None:
        """The work-up at entry: the months it takes, or None when it ends the walk (diverted to
        topical therapy, or observation over before it ends)."""
        if self.ref.workup is None:
            return 0.0
        months = self.patient.workup_months
        if months >= self.end:
            self.segment(0.0, self.end, "uncontrolled")
            self.final_state = "waiting"
            return None
        self.segment(0.0, months, "uncontrolled")
        if self.patient.workup_found:
            self.first_topical = months
            self.segment(months, self.end, "topical")
            self.final_state = "diverted"
            return None
        return months

    def episode(self, name: str, now: float, retreatment: bool) -> tuple[float, str | None]:
        """Run one episode of `name` from `now`; return (its stop, its reason; None if censored)."""
        t, s, rng = self.ref.treatments[name], self.strategy, self.rng
        line = self.line_of[name]
        to_target = s.target_assess_at is not None
        assess_at = (s.target_assess_at if to_target else t.assess_at).draw(rng)
        p = adjusted_response(t.response, t.modifiers, self.patient.covariates, line)
        plan = plan_episode(t, p, assess_at, to_target, rng)
        bridged = name in s.bridge
        if bridged:
            self.bridge(now)
        stop, reason, seen = now + plan.duration, plan.reason, plan.duration
        if stop >= self.end:
            stop, reason, seen = self.end, None, self.end - now
        # `seen` (months from the start) is compared with the plan's own times: recomputing
        # it as stop - now can fall an ulp short of an onset and lose the stopping event.
        known = plan.assessed <= seen
        if known and plan.responded:
            self.control(now + plan.assessed)
            self.segment(now, now + plan.assessed, "uncontrolled")
            self.segment(now + plan.assessed, stop, "controlled")
        else:
            self.segment(now, stop, "uncontrolled")
        events = [e for e in plan.adverse_events if e[1] <= seen]
        self.episodes.append({
            "episode": len(self.episodes) + 1, "line": line, "treatment": name, "start": now, "stop": stop,
            "reason": self.patient.end_reason if reason is None else reason,
            "responded": plan.responded if known else None, "assessed": now + plan.assessed if known else math.nan,
            "retreatment": retreatment, "adverse_events": len(events),
            "escalated": plan.escalated and known, "below_target": plan.below_target and known, "bridged": bridged,
        })
        return stop, reason

    def bridge(self, now: float) -> None:
        """A corticosteroid burst over the onset of the drug starting now."""
        rescue, rng = self.ref.rescue, self.rng
        effective = rng.random() < rescue.response
        rebound = rng.random() < rescue.rebound
        onset = rescue.onset.draw(rng)
        if effective and now + onset <= self.end:
            self.control(now + onset)
        self.bursts.append({"time": now, "reason": "bridge", "state": "uncontrolled",
                            "effective": effective, "rebound": rebound})

    def control(self, at: float) -> None:
        """The patient's disease is controlled at `at` (a response, or an effective bridge)."""
        if self.first_control is None or at < self.first_control:
            self.first_control = at

    def segment(self, start: float, stop: float, state: str) -> None:
        """Time spent in a flare state."""
        if stop > start:
            self.segments.append((start, stop, state))

    def flares(self) -> None:
        """Flare bursts: a Poisson process at the rate of each state, laid over the trajectory."""
        rescue, rng = self.ref.rescue, self.rng
        if rescue is None:
            return
        for start, stop, state in self.segments:
            rate = rescue.flare_rates.get(state, 0.0)
            if rate <= 0:
                continue
            for time in sorted(rng.uniform(start, stop, rng.poisson(rate * (stop - start)))):
                self.bursts.append({"time": float(time), "reason": "flare", "state": state,
                                    "effective": bool(rng.random() < rescue.response),
                                    "rebound": bool(rng.random() < rescue.rebound)})

    def summary(self) -> dict:
        """The patient's row: final state, follow-up, first topical, lines, episodes, relapses."""
        final = {"lost_to_followup": "lost_to_followup", "death": "dead"}.get(self.patient.end_reason, self.final_state)
        return {"final_state": final, "follow_up_months": self.end, "months_to_first_topical": self.first_topical,
                "lines_used": len(self.line_of), "episodes": len(self.episodes), "relapses": self.relapses,
                "months_to_first_control": self.first_control,
                "bursts": len(self.bursts), "rebounds": sum(b["rebound"] for b in self.bursts)}


@dataclass
class Tables:
    """The reference's tables, with the engines' column names (a subset of them)."""

    episodes: pd.DataFrame
    patients: pd.DataFrame
    bursts: pd.DataFrame


def simulate(loaded, patients: int, seed: int) -> Tables:
    """Simulate `patients` patients of a loaded scenario (`sim.loader.load_scenario`) under every
    strategy with the reference's own random numbers (NumPy PCG64 from `seed`)."""
    ref = read(loaded)
    if any(capacity != "unlimited" for capacity in ref.resources.values()):
        raise ValueError("the reference simulator does not simulate limited resources (only the DES does)")
    rng = np.random.default_rng(seed)
    episodes, summaries, bursts = [], [], []
    for number in range(patients):
        patient = draw_patient(ref, number, rng)
        for strategy in ref.strategies:
            walk = Walk(ref, strategy, patient, rng)
            walk.run()
            walk.flares()
            ids = {"strategy": strategy.name, "patient": number}
            episodes += [ids | row for row in walk.episodes]
            bursts += [ids | row for row in walk.bursts]
            summaries.append(ids | patient.covariates | walk.summary())
    return Tables(pd.DataFrame(episodes), pd.DataFrame(summaries),
                  pd.DataFrame(bursts, columns=["strategy", "patient", "time", "reason", "state", "effective", "rebound"]))
