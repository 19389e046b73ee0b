"""Figures: files written, the right panels and lines, fixed colours."""

from __future__ import annotations

import matplotlib.colors as mcolors
import pytest
from tiny_runs import STRATEGIES, TREATMENT_LABELS, tiny_run

from analysis.colours import treatment_colours
from analysis.outcomes import topical_return, topical_return_at_horizon
from analysis.plots import (
    plot_discontinuation_reasons,
    plot_drug_survival,
    plot_state_occupancy,
    plot_topical_return_at_horizon,
    plot_topical_return_over_time,
    save_figure,
)
from analysis.states import state_occupancy
from analysis.survival import cumulative_incidence, drug_survival


@pytest.fixture(scope="module")
def run():
    return tiny_run(patients=120, seed=9)


def _curves(ax):
    """Lines drawn as curves (not censoring tick markers)."""
    return [line for line in ax.get_lines() if line.get_linestyle() not in ("None", "none", "")]


def test_drug_survival_figure(run, tmp_path):
    fig = plot_drug_survival(
        drug_survival(run.episodes),
        labels=TREATMENT_LABELS,
        censoring_ticks=True,
        pathways=STRATEGIES,
    )
    # One panel and one at-risk table per strategy, and one legend below them.
    assert len(fig.axes) == 2 * len(STRATEGIES)
    panels = _panels(fig)
    assert len(panels) == len(STRATEGIES)
    legend = fig.legends[0]
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
    assert sorted(text.get_text() for text in legend.get_texts()) == sorted(TREATMENT_LABELS.values())
    colours = treatment_colours(list(run.episodes["treatment"].cat.categories))
    for ax, lines in zip(panels, STRATEGIES.values()):
        curves = _curves(ax)
        assert [c.get_label() for c in curves] == [TREATMENT_LABELS[t] for t in lines]
        for curve, treatment in zip(curves, lines):
            assert mcolors.same_color(curve.get_color(), colours[treatment])
        assert len(ax.get_lines()) > len(curves)  # censoring ticks were drawn
        assert ax.get_xlabel() == "" and "%" in ax.get_ylabel()
    assert fig.get_suptitle()
    written = save_figure(fig, tmp_path / "drug_survival.png", svg=True)
    assert [p.suffix for p in written] == [".png", ".svg"]
    assert all(p.stat().st_size > 10_000 for p in written)


def _panels(fig):
    """The survival panels of a drug-survival figure (not its at-risk tables)."""
    return [ax for ax in fig.axes if "%" in ax.get_ylabel()]


def test_at_risk_counts_are_at_most_four_characters():
    from analysis.plots import _count

    counts = [0, 7, 950, 999, 1_000, 1_449, 9_949, 9_950, 99_499, 99_500, 999_499, 999_500, 1_250_000]
    assert [_count(n) for n in counts] == ["0", "7", "950", "999", "1.0k", "1.4k", "9.9k", "10k", "99k", "100k",
                                           "999k", "1.0M", "1.2M"]


def test_treatment_keeps_its_colour_across_strategies(run):
    fig = plot_drug_survival(drug_survival(run.episodes), labels=TREATMENT_LABELS)
    panels = _panels(fig)
    colour_of = {}
    for ax in panels:
        for curve in _curves(ax):
            colour_of.setdefault(curve.get_label(), set()).add(mcolors.to_hex(curve.get_color()))
    assert all(len(c) == 1 for c in colour_of.values())
    assert len(colour_of) == 4


def test_discontinuation_reasons_figure(run, tmp_path):
    fig = plot_discontinuation_reasons(
        cumulative_incidence(run.episodes, by="treatment"), labels=TREATMENT_LABELS
    )
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 4  # one panel per treatment
    assert all(ax.get_xlabel().startswith("Months") for ax in visible)
    legend = fig.legends[0]
    assert "Still on treatment" in [t.get_text() for t in legend.get_texts()]
    assert save_figure(fig, tmp_path / "reasons")[0].exists()


def test_topical_return_figures(run, tmp_path):
    bars = plot_topical_return_at_horizon(
        topical_return_at_horizon(run.patients), horizon_months=60
    )
    assert len(bars.axes) == 1
    ax = bars.axes[0]
    assert len(ax.patches) == 2 * len(STRATEGIES)  # two measures × strategies
    assert ax.get_legend() is not None and "%" in ax.get_ylabel()
    curves = plot_topical_return_over_time(topical_return(run.episodes, run.patients))
    assert len(curves.axes) == 2
    assert all(len(_curves(ax)) == len(STRATEGIES) for ax in curves.axes)
    for fig, name in ((bars, "bars"), (curves, "curves")):
        assert save_figure(fig, tmp_path / name)[0].stat().st_size > 5_000


def test_state_occupancy_figure(run, tmp_path):
    occupancy = state_occupancy(run.episodes, run.patients)
    fig = plot_state_occupancy(occupancy)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == len(STRATEGIES)
    states = occupancy["state"].cat.categories
    assert all(len(ax.collections) == len(states) for ax in visible)
    assert len(fig.legends[0].get_texts()) == len(states)
    assert save_figure(fig, tmp_path / "states")[0].exists()


def test_at_risk_rows_drop_a_label_parenthesis_the_legend_keeps_it(run):
    labels = {**TREATMENT_LABELS, "azathioprine": "Azathioprine (low dose, TPMT not measured)"}
    fig = plot_drug_survival(drug_survival(run.episodes), labels=labels)
    tables = [ax for ax in fig.axes if ax not in _panels(fig)]
    rows = {tick.get_text() for ax in tables for tick in ax.get_yticklabels()}
    assert "Azathioprine" in rows and not any("(" in row for row in rows)
    assert "Azathioprine (low dose, TPMT not measured)" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_time_axes_have_at_most_ten_intervals_at_every_horizon():
    from analysis.plots import month_step

    assert [month_step(m) for m in (48, 120, 240, 720)] == [6, 12, 24, 120]  # 4, 10, 20 and 60 years
    for months in range(1, 2400, 7):
        assert months / month_step(months) <= 10 or month_step(months) == 240


def test_a_legend_below_one_panel_fits_the_figure(run):
    """One strategy, eight labels: the legend takes fewer columns rather than run off the figure."""
    one = run.episodes[run.episodes["strategy"] == run.episodes["strategy"].iloc[0]]
    labels = {t: f"{name} (a long description of the drug)" for t, name in TREATMENT_LABELS.items()}
    fig = plot_drug_survival(drug_survival(one), labels=labels)
    renderer = fig.canvas.get_renderer()
    legend = fig.legends[0]
    assert legend.get_window_extent(renderer).width <= fig.bbox.width
    assert len(legend.get_texts()) == len(set(one["treatment"].astype(str)))


def test_figure_style_and_palettes_are_seaborns():
    """The style and palettes written out without seaborn are seaborn's own."""
    import seaborn as sns

    from analysis.colours import color_palette
    from analysis.plots import figure_style

    expected = {**sns.axes_style("whitegrid", {"grid.color": "#e6e6e6"}),
                **sns.plotting_context("notebook", font_scale=0.85)}
    expected.pop("image.cmap")
    style = figure_style()
    assert {k: style[k] for k in expected} == expected
    for name, n in (("tab10", 10), ("tab10", 3), ("Dark2", 1), ("Dark2", 8), ("Dark2", 9), ("Blues_r", 2),
                    ("Blues_r", 9)):
        assert color_palette(name, n) == list(sns.color_palette(name, n))
