"""The pathway diagram of a run: for each strategy its lines of systemic therapy in
order, the way out of the pathway (topical therapy after a remission, supportive care
when the lines are exhausted) and its rules (retreatment or next line on relapse,
corticosteroid bridges, treat-to-target assessment, a mixed first line).

Drawn from the run manifest's strategies (`run.json`), so it shows what was simulated.
"""

from __future__ import annotations

from collections.abc import Mapping

from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from analysis.plots import new_figure

_BOX_W, _BOX_H, _GAP = 1.7, 0.62, 0.55   # box width, height and the gap between boxes (axis units)
_ROW = 2.1                                # height of one strategy's row


def strategy_rules(info: Mapping) -> list[str]:
    """One-line descriptions of a strategy's rules, from its manifest entry."""
    rules = []
    relapse = info.get("on_relapse")
    if relapse == "retreat":
        rules.append("after a relapse: the drug that had worked is given again")
    elif relapse == "next_line":
        rules.append("after a relapse: the next line")
    if info.get("bridge"):
        rules.append("corticosteroid bridge over the onset of " + ", ".join(map(str, info["bridge"])).replace("_", " "))
    target = info.get("treat_to_target")
    if isinstance(target, Mapping):
        at = target.get("assess_at")
        when = at.get("value") if isinstance(at, Mapping) else at
        rules.append(f"treat to target: every line assessed at {when}; below target moves on")
    if info.get("first_line"):
        rules.append("first line: a mix of treatments")
    if info.get("retreat_only"):
        rules.append("retreatment only with " + ", ".join(map(str, info["retreat_only"])).replace("_", " "))
    return rules


def plot_pathways(strategies: Mapping[str, Mapping], labels: Mapping[str, str]):
    """One row per strategy: its lines as boxes joined by arrows, supportive care at the
    end, remission to topical therapy above, and its rules as text below."""
    widest = max((len(info.get("lines") or []) for info in strategies.values()), default=1) + 1
    width = widest * (_BOX_W + _GAP) + 0.4
    fig = new_figure(max(8.0, 1.25 * width), 0.9 + 1.35 * len(strategies) * _ROW / 2.1 + 0.25)
    ax = fig.subplots()
    ax.set_axis_off()
    ax.set_xlim(-0.2, width)
    ax.set_ylim(-_ROW * len(strategies) + 0.2, 0.9)
    for row, (name, info) in enumerate(strategies.items()):
        _strategy_row(ax, -row * _ROW, labels.get(name, name.replace("_", " ")), info, labels)
    ax.set_title("Treatment pathways as simulated", loc="left", fontsize=12)
    return fig


def _strategy_row(ax, y: float, label: str, info: Mapping, labels: Mapping[str, str]) -> None:
    lines = [str(t) for t in (info.get("lines") or [])]
    ax.text(0.0, y + 0.55, label, fontsize=11, fontweight="bold", va="bottom")
    names = [f"{i + 1}. {labels.get(t, t.replace('_', ' '))}" for i, t in enumerate(lines)] + ["Supportive care"]
    for i, text in enumerate(names):
        x = i * (_BOX_W + _GAP)
        last = i == len(names) - 1
        ax.add_patch(FancyBboxPatch((x, y - _BOX_H / 2), _BOX_W, _BOX_H, boxstyle="round,pad=0.02,rounding_size=0.08",
                                    facecolor="#eeeeee" if last else "#dde8f4", edgecolor="#555555"))
        ax.text(x + _BOX_W / 2, y, _wrapped(text), ha="center", va="center", fontsize=8.5)
        if i:
            ax.add_patch(FancyArrowPatch((x - _GAP, y), (x, y), arrowstyle="-|>", mutation_scale=12, color="#333333"))
    ax.text(0.0, y - _BOX_H / 2 - 0.12,
            "→ moves on after non-response, an adverse event or loss of response; a remission returns to topical "
            "therapy (a relapse brings the patient back)", fontsize=8, va="top", color="#444444")
    rules = strategy_rules(info)
    if rules:
        ax.text(0.0, y - _BOX_H / 2 - 0.45, "Rules: " + "; ".join(rules), fontsize=8, va="top", color="#444444")


def _wrapped(text: str, width: int = 22) -> str:
    words, lines, current = text.split(), [], ""
    for word in words:
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    return "\n".join(lines + [current])
