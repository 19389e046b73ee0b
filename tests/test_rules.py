"""The clinical rules of `sim.rules`, one family at a time, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

from sim import distributions as d
from sim.engine.compiled_model import distribution_table
from sim.mortality import LifeTable
from sim.rules import adverse_events, bridges, courses, eligibility, fates, flares, loss_of_response, mortality
from sim.rules import observation, purposes, relapse, response
from sim.rules.durations import normal_quantile, quantile
from sim.rules.reasons import (
    ADVERSE_EVENT,
    CONTINUE,
    DEATH,
    HORIZON,
    LOSS_OF_RESPONSE,
    LOST_TO_FOLLOWUP,
    NO_REASON,
    REMISSION,
    SWITCH,
)

INF = math.inf


def test_odds_adjustment_is_right_at_certainties():
    assert response.adjusted_odds(0.5, 3.0) == pytest.approx(0.75)
    assert response.adjusted_odds(0.2, 1.0) == pytest.approx(0.2)
    assert response.adjusted_odds(0.8, 0.25) == pytest.approx(0.5)
    assert response.adjusted_odds(1.0, 0.0) == 0.0  # an odds ratio of 0: never, even from certainty
    assert response.adjusted_odds(0.0, INF) == 1.0  # infinity: always
    assert response.adjusted_odds(1.0, 2.0) == 1.0
    assert response.adjusted_odds(1.0, 0.5) == 1.0
    assert response.adjusted_odds(0.0, 2.0) == 0.0
    assert response.adjusted_odds(0.3, 0.0) == 0.0


def test_a_modifier_replaces_or_adjusts():
    assert response.modified_response(0.4, 0.9, 0.5) == 0.9
    assert response.modified_response(0.5, math.nan, 3.0) == pytest.approx(0.75)
    assert response.responds(0.3, 0.5) and not response.responds(0.5, 0.5)


def test_fates_split_by_their_shares():
    assert fates.fate(0.1, 0.3, 0.2) == REMISSION
    assert fates.fate(0.4, 0.3, 0.2) == SWITCH
    assert fates.fate(0.6, 0.3, 0.2) == CONTINUE


def test_capped_continue_hands_over_in_the_proportions_of_remission_and_switch():
    remission, switch, stay = 0.3, 0.1, 0.6
    assert fates.handed_over(0.5, remission, switch, stay) == REMISSION  # (0.5-0.4)/0.6 = 0.17 < 0.75
    assert fates.handed_over(0.9, remission, switch, stay) == SWITCH  # 0.83 >= 0.75
    u = 0.4 + 0.6 * (np.arange(10_000) + 0.5) / 10_000  # the 'continue' share, evenly
    handed = [fates.handed_over(x, remission, switch, stay) for x in u]
    assert np.mean(np.array(handed) == REMISSION) == pytest.approx(remission / (remission + switch), abs=1e-3)
    assert fates.handed_over(0.5, 0.0, 0.0, 1.0) == REMISSION


def test_course_ends_at_the_course_the_cap_or_never():
    assert courses.course_end(0.1, 10.0, INF, 0.3, 0.2, 0.5) == (10.0, REMISSION)
    assert courses.course_end(0.1, 10.0, 6.0, 0.3, 0.2, 0.5) == (6.0, REMISSION)
    assert courses.course_end(0.4, 10.0, INF, 0.3, 0.2, 0.5) == (10.0, SWITCH)
    assert courses.course_end(0.95, 10.0, 6.0, 0.3, 0.2, 0.5) == (6.0, SWITCH)  # (0.95-0.5)/0.5 = 0.9 >= 0.6
    assert courses.course_end(0.6, 10.0, 6.0, 0.3, 0.2, 0.5) == (6.0, REMISSION)  # 0.2 < 0.6
    assert courses.course_end(0.95, 10.0, INF, 0.3, 0.2, 0.5) == (INF, NO_REASON)
    assert courses.course_end(0.1, INF, INF, 0.3, 0.2, 0.5) == (INF, NO_REASON)
    assert courses.at_least_until_assessment(2.0, 3.0) == 3.0


def test_loss_of_response_and_adverse_events_end_an_episode_first():
    assert loss_of_response.with_loss_of_response(10.0, REMISSION, 3.0, 4.0) == (7.0, LOSS_OF_RESPONSE)
    assert loss_of_response.with_loss_of_response(10.0, REMISSION, 3.0, 8.0) == (10.0, REMISSION)
    assert adverse_events.with_adverse_event(10.0, REMISSION, 5.0) == (5.0, ADVERSE_EVENT, True)
    assert adverse_events.with_adverse_event(10.0, REMISSION, INF) == (10.0, REMISSION, False)
    assert adverse_events.occurs(0.1, 0.2) and not adverse_events.occurs(0.2, 0.2)
    assert adverse_events.stops_treatment(0.4, 0.5)
    assert adverse_events.happened(5.0, 5.0) and not adverse_events.happened(5.1, 5.0)


def test_relapse_and_retreatment():
    assert relapse.relapse_after(0.1, 0.5, 3.0, 10.0) == 3.0
    assert relapse.relapse_after(0.6, 0.5, 3.0, 10.0) == -1.0
    assert relapse.relapse_after(0.1, 0.5, 12.0, 10.0) == -1.0  # after the end of observation
    assert relapse.may_retreat(True, True, True)
    assert not relapse.may_retreat(False, True, True) and not relapse.may_retreat(True, False, True)


def test_bridge_and_flares():
    assert bridges.bridge_burst(0.1, 0.9, 0.8, 0.3) == (True, False)
    assert bridges.controlled_by_bridge(True, 2.0, 0.5, 10.0) == 2.5
    assert bridges.controlled_by_bridge(False, 2.0, 0.5, 10.0) == -1.0
    assert bridges.controlled_by_bridge(True, 9.8, 0.5, 10.0) == -1.0
    assert flares.next_flare(0.0, 1.0, 0.5, 10.0) == (2.0, 0.0)
    assert flares.next_flare(0.0, 6.0, 0.5, 10.0) == (INF, 1.0)  # 5 units of hazard used in the interval
    assert flares.unit_exponential(1.0 - math.exp(-1.0)) == pytest.approx(1.0)
    assert flares.burst_outcome(0.5, 0.5, 0.8, 0.3) == (True, False)


def test_mortality_at_a_constant_hazard_and_against_the_life_table():
    ages = tuple(range(0, 111))
    table = LifeTable(ages, tuple([0.1] * len(ages)))
    knots = np.asarray(ages + (111,), dtype=float)
    hazards = np.full(len(ages), 0.1)
    cumulative = np.concatenate([[0.0], np.cumsum(hazards)])
    assert mortality.years_to_death(40.0, 1.0 - math.exp(-1.0), knots, cumulative, hazards) == pytest.approx(10.0)
    rising = LifeTable(ages, tuple(0.001 * 1.08**a for a in ages))
    hazards = np.asarray(rising.hazards_per_year)
    cumulative = np.concatenate([[0.0], np.cumsum(hazards)])
    for age, u in ((30.5, 0.3), (70.0, 0.99), (0.0, 0.01), (105.2, 0.5)):
        expected = rising.years_to_death(np.array([age]), np.array([u]))[0]
        assert mortality.years_to_death(age, u, knots, cumulative, hazards) == pytest.approx(expected, rel=1e-12)
    assert table.hazards_per_year[0] == 0.1


def test_observation_ends_at_the_first_limit():
    assert observation.observation_end(120.0, INF, INF, INF, 50.0) == (50.0, LOST_TO_FOLLOWUP)
    assert observation.observation_end(120.0, 80.0, INF, 60.0, 70.0) == (60.0, DEATH)
    assert observation.observation_end(120.0, INF, INF, 60.0, 50.0) == (50.0, LOST_TO_FOLLOWUP)
    assert observation.observation_end(120.0, 80.0, 30.0, INF, INF) == (30.0, HORIZON)
    assert observation.observation_end(120.0, INF, -5.0, INF, INF) == (0.0, HORIZON)


def test_eligibility_conditions_and_earlier_failures():
    levels = np.array([[False, True, True]])
    assert eligibility.condition_holds(eligibility.AT_LEAST, 12.0, 12.0, levels, 0)
    assert not eligibility.condition_holds(eligibility.BELOW, 12.0, 12.0, levels, 0)
    assert eligibility.condition_holds(eligibility.IS, 1.0, 1.0, levels, 0)
    assert eligibility.condition_holds(eligibility.IN, 2.0, 0.0, levels, 0)
    assert eligibility.condition_holds(eligibility.NOT_IN, 0.0, 0.0, levels, 0)
    requires = np.array([[False, False], [True, False]])
    failed, allowed = np.array([False, False]), np.array([True, True])
    assert eligibility.may_start(0, failed, allowed, requires)
    assert not eligibility.may_start(1, failed, allowed, requires)  # needs drug 0 to have failed
    failed[0] = True
    assert eligibility.may_start(1, failed, allowed, requires) and not eligibility.may_start(0, failed, allowed,
                                                                                           requires)
    cumulative = np.array([[0.2, 0.5, 1.0]])
    assert [eligibility.first_line_choice(u, cumulative, 0, 3) for u in (0.1, 0.3, 0.7)] == [0, 1, 2]


def test_normal_quantile_to_full_precision():
    u = np.concatenate([np.linspace(1e-6, 1 - 1e-6, 2001), [1e-16, 1e-10, 0.02425, 1 - 1e-10, 1 - 2**-53]])
    ours = np.array([normal_quantile(x) for x in u])
    assert np.allclose(ours, special.ndtri(u), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("distribution", [
    d.Fixed(3.0), d.Uniform(1.0, 5.0), d.Exponential(12.0), d.Weibull(1.5, 20.0), d.Gamma(2.3, 4.0),
    d.Gamma(0.4, 10.0), d.LogNormal(math.log(20.0), 0.8), d.TruncatedNormal(5.0, 4.0),
    d.Empirical((1.0, 3.0, 7.0), (1.0, 2.0, 1.0)), d.Clipped(d.Exponential(12.0), 1.0, 30.0)])
def test_quantiles_match_the_distributions(distribution):
    rows, gamma, empirical = distribution_table([distribution])
    u = (np.arange(997) + 0.5) / 997
    ours = np.array([quantile(rows, 0, x, gamma, empirical) for x in u])
    assert np.allclose(ours, distribution.ppf(u), rtol=1e-9, atol=1e-12)


def test_purpose_codes_are_distinct_and_append_only():
    codes = {name: value for name, value in vars(purposes).items() if name.isupper() and isinstance(value, int)
             and name != "ADVERSE_EVENTS_PER_TREATMENT"}
    assert len(set(codes.values())) == len(codes)
    # The codes published so far: a new rule appends, never renumbers.
    assert [codes[name] for name in ("COVARIATE", "FOLLOW_UP", "ASSESSMENT", "RESPONSE", "FATE", "FLARE_REBOUND")] == [
        1, 2, 9, 10, 13, 27]
    assert purposes.episode_offset(2, 1) == 2 * purposes.ADVERSE_EVENTS_PER_TREATMENT + 1
