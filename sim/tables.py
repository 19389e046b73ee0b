"""The tidy output tables of a run: their columns, meanings, units and dtypes.

Every engine writes exactly these columns; every analysis reads them. Times are months
since the patient entered the pathway (the moment systemic therapy was indicated).
"""

from __future__ import annotations

#: Why a treatment episode ended.
REASONS = (
    "nonresponse",        # not responding at the assessment
    "adverse_event",      # an adverse event that stops the drug
    "loss_of_response",   # a responder who stopped responding
    "remission",          # planned end of a successful course, back to topical therapy
    "switch",             # planned change to the next line while controlled
    "lost_to_followup",   # censored: the patient left follow-up while on the drug
    "horizon",            # censored: still on the drug at the end of observation
    "death",              # censored: died of other causes (background mortality) while on the drug
)

#: Reasons that censor drug survival by default (the drug had not been stopped).
CENSORING_REASONS = ("lost_to_followup", "horizon", "death")

#: Reasons that count as a failure of the drug (the next line follows).
FAILURE_REASONS = ("nonresponse", "adverse_event", "loss_of_response")

#: Where a patient is at the end of observation.
#: "waiting": for a limited resource, or still in the work-up when observation ended;
#: "diverted": the work-up at entry found and treated an exacerbating factor, and the
#: patient went back to topical therapy without a systemic drug (see `workup:`).
FINAL_STATES = ("systemic", "topical", "supportive_care", "lost_to_followup", "waiting", "dead", "diverted")

#: The disease states in which flares happen and corticosteroid bursts are given.
FLARE_STATES = ("topical", "uncontrolled", "controlled", "supportive_care")

#: Why a corticosteroid burst was given.
BURST_REASONS = ("bridge", "flare")

#: Integer codes of the vocabularies above, as the engines store them.
REASON_CODE = {reason: code for code, reason in enumerate(REASONS)}
STATE_CODE = {state: code for code, state in enumerate(FINAL_STATES)}

#: Default times (months) at which drug survival is reported.
REPORT_TIMES_MONTHS = (12.0, 24.0, 36.0)

#: episodes.parquet: one row per treatment episode.
EPISODE_COLUMNS = {
    "replicate": "int32: replicate number, 0-based",
    "strategy": "category: strategy name",
    "patient": "int32: patient number within the replicate, 0-based",
    "episode": "int16: episode number within the patient's trajectory, 1-based",
    "line": "int16: line of therapy for this patient, 1-based (re-treatment keeps its line)",
    "treatment": "category: treatment name",
    "start": "float64: months since entry when the episode started",
    "stop": "float64: months since entry when the episode ended",
    "reason": "category: why it ended, one of REASONS",
    "responded": "boolean (nullable): response at the assessment; NA if it ended before",
    "assessed": "float64: months since entry when response was assessed; NaN if it ended before",
    "retreatment": "bool: the drug is restarted after a relapse because it worked before",
    "adverse_events": "int16: adverse events during the episode (stopping or not)",
    "stopping_adverse_event": "category (nullable): the adverse event that ended it",
    "escalated": "bool: a non-responder was escalated (dose or route) and reassessed",
    "below_target": "bool: treat-to-target: a responder below target, moved on at the assessment",
    "bridged": "bool: a corticosteroid burst covered the drug's onset",
    "months_waited": "float64: months waited for a limited resource before the start",
}

#: bursts.parquet: one row per systemic-corticosteroid burst (bridge or flare rescue).
BURST_COLUMNS = {
    "replicate": "int32",
    "strategy": "category",
    "patient": "int32",
    "time": "float64: months since entry",
    "reason": "category: bridge (over a slow drug's onset) or flare (rescue)",
    "state": "category: topical, uncontrolled, controlled or supportive_care when it happened",
    "effective": "bool: the burst controlled the flare",
    "rebound": "bool: a rebound flare followed the burst",
}

#: adverse_events.parquet: one row per adverse event.
ADVERSE_EVENT_COLUMNS = {
    "replicate": "int32",
    "strategy": "category",
    "patient": "int32",
    "episode": "int16: the episode during which it happened",
    "treatment": "category",
    "adverse_event": "category: adverse-event name as declared in the scenario",
    "time": "float64: months since entry",
    "stopped_treatment": "bool: it ended the episode",
}

#: patients.parquet: one row per patient and strategy (covariate columns follow `patient`).
PATIENT_COLUMNS = {
    "replicate": "int32",
    "strategy": "category",
    "patient": "int32",
    "age_group": "category: population age group (adult, child)",
    # ... then one column per covariate declared in the scenario, named with its unit ...
    "final_state": "category: one of FINAL_STATES",
    "follow_up_months": "float64: months observed (horizon, end of follow-up or loss)",
    "months_to_first_topical": "float64: months to the first return to topical (a diverted patient: the end of the work-up); NA if never",
    "lines_used": "int16: distinct lines of therapy started",
    "episodes": "int16: treatment episodes started",
    "relapses": "int16: relapses from topical therapy back into the pathway",
    "months_systemic": "float64: months on systemic treatment",
    "months_topical": "float64: months controlled on topical therapy after systemic (or after a diverting work-up)",
    "months_supportive_care": "float64: months in supportive care (strategy exhausted)",
    "months_waiting": "float64: months waiting for a limited resource",
    "entry_month": "float64: when the patient entered, months on the simulation clock",
    "months_to_first_control": "float64: months to first control (a response, or an effective bridge burst); NA if never",
    "bursts": "int16: corticosteroid bursts (bridges and flare rescues)",
    "rebounds": "int16: rebound flares after bursts",
}

#: Each table's columns (above), by the name of its file (`<table>.parquet`).
TABLE_COLUMNS = {
    "episodes": EPISODE_COLUMNS,
    "patients": PATIENT_COLUMNS,
    "adverse_events": ADVERSE_EVENT_COLUMNS,
    "bursts": BURST_COLUMNS,
}

#: The columns of `TABLE_COLUMNS` in which a value may be missing (NaN or NA, as their
#: descriptions say). Every other column listed there always has a value, and the Parquet
#: files declare it so (required, not null); a column a table adds beyond the lists (a
#: covariate, a cost) may be missing.
MAY_BE_MISSING = {
    "episodes": ("responded", "assessed", "stopping_adverse_event"),
    "patients": ("months_to_first_topical", "months_to_first_control"),
    "adverse_events": (),
    "bursts": (),
}


def always_present(table: str) -> tuple[str, ...]:
    """The columns of `table` (a name of `TABLE_COLUMNS`) that never miss a value; none for
    another table."""
    columns = TABLE_COLUMNS.get(table, {})
    return tuple(column for column in columns if column not in MAY_BE_MISSING[table])


def categorical(values, categories) -> pd.Categorical:
    """Return `values` as a pandas Categorical with a fixed category order."""
    import pandas as pd  # here: the vocabularies above are read by commands that need no pandas

    return pd.Categorical(values, categories=list(categories))
