"""The scores of an evaluation: a text table, results.json, report.md and the F1 chart."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devtools.evaluation.dataset import Dataset
from devtools.evaluation.harness import ExtractorUsage, RunResult
from devtools.evaluation.scoring import ConversationScore, Tally
from schemas import Dimension

Row = tuple[str, list[str]]  # a label and one cell per run


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def decimal(value: float | None) -> str:
    return " n/a" if value is None else f"{value:.2f}"


def cost(usage: ExtractorUsage) -> str:
    value = usage.cost_usd
    return "unknown" if value is None else f"${value:.4f}"


def fraction(found: int, total: int) -> str:
    share = f" ({found / total:.0%})" if total else ""
    return f"{found}/{total}{share}"


def dimension_cell(tally: Tally) -> str:
    return (
        f"{decimal(tally.precision)} {decimal(tally.recall)} {decimal(tally.f1)} "
        f"{tally.mentions_found:>2}/{tally.mentions:<2}"
    )


def rows(results: Sequence[RunResult]) -> tuple[list[Row], list[Row]]:
    """Per-dimension rows (P R F1 mentions), then the overall lines."""
    summaries = [r.summary for r in results]
    per_dimension = [
        (d.value, [dimension_cell(s.per_dimension[d]) for s in summaries]) for d in Dimension
    ]
    overall: list[Row] = [
        ("overall (micro)", [dimension_cell(s.overall) for s in summaries]),
        (
            "mentions found",
            [fraction(s.overall.mentions_found, s.overall.mentions) for s in summaries],
        ),
        (
            "stale shown as current",
            [f"{s.overall.stale_shown} of {s.overall.stale}" for s in summaries],
        ),
        (
            "final stage acceptable",
            [fraction(s.stage_acceptable, s.conversations) for s in summaries],
        ),
        ("extractor calls", [str(r.usage.calls) for r in results]),
        ("failed extractions", [str(r.usage.failed) for r in results]),
        ("LLM requests", [str(r.usage.llm_requests) for r in results]),
        ("prompt tokens", [str(r.usage.prompt_tokens) for r in results]),
        ("completion tokens", [str(r.usage.completion_tokens) for r in results]),
        ("cost (USD)", [cost(r.usage) for r in results]),
        ("evidence quotes dropped", [str(r.usage.evidence_dropped) for r in results]),
        ("µs per extractor call", [_micros(r.usage) for r in results]),
    ]
    return per_dimension, overall


def _micros(usage: ExtractorUsage) -> str:
    value = usage.microseconds_per_call
    return "n/a" if value is None else f"{value:,.0f}"


def part_heading(dataset: Dataset) -> str:
    """The line above a part's table when a run scores several (held-out, development)."""
    turns = sum(len(conversation.turns) for conversation in dataset.conversations)
    return (
        f"\n== {dataset.part}: {dataset.path} "
        f"({len(dataset.conversations)} conversations, {turns} turns)\n"
    )


def render_table(results: Sequence[RunResult]) -> str:
    per_dimension, overall = rows(results)
    labels = [r.spec.label for r in results]
    first = max(len(label) for label, _ in [*per_dimension, *overall])
    width = max(24, *(len(label) for label in labels), *(len(c) for _, cs in overall for c in cs))

    def line(label: str, cells: Sequence[str]) -> str:
        return f"{label:<{first}}  " + "  ".join(f"{cell:<{width}}" for cell in cells)

    lines = [
        line("", labels),
        line("dimension", ["P    R    F1   mentions"] * len(results)),
        "-" * (first + 2 + (width + 2) * len(results)),
        *(line(label, cells) for label, cells in per_dimension),
        "-" * (first + 2 + (width + 2) * len(results)),
        *(line(label, cells) for label, cells in overall),
    ]
    return "\n".join(text.rstrip() for text in lines)


def render_markdown(dataset: Dataset, results: Sequence[RunResult]) -> str:
    per_dimension, overall = rows(results)
    header = "| | " + " | ".join(r.spec.label for r in results) + " |"
    rule = "|---|" + "---|" * len(results)

    def table(body: list[Row], first: str) -> list[str]:
        head = header.replace("| |", f"| {first} |", 1)
        return [head, rule, *(f"| {label} | " + " | ".join(cells) + " |" for label, cells in body)]

    lines = [
        f"# Extraction quality: {dataset.part}",
        "",
        f"Dataset `{dataset.path}`: {len(dataset.conversations)} conversations"
        + (f", {len(dataset.problems)} bad line(s) skipped." if dataset.problems else "."),
        "Each cell: precision, recall, F1 of `identified` over the labelled true/false cases "
        "(null not scored), then labelled mentions found in the identified dimension's value "
        "fields or evidence.",
        "",
        *table(per_dimension, "dimension"),
        "",
        *table(overall, "overall"),
        "",
        "![F1 per dimension](f1.png)",
        "",
        "## Misses per conversation",
        "",
    ]
    for result in results:
        lines += [f"### {result.spec.label}", ""]
        lines += [f"- {text}" for text in misses(result.scores)] or ["- none"]
        lines.append("")
    if dataset.problems:
        lines += ["## Bad dataset lines", ""]
        lines += [f"- line {number}: {why}" for number, why in dataset.problems]
    return "\n".join(lines) + "\n"


def misses(scores: Sequence[ConversationScore]) -> list[str]:
    """One line per conversation with anything wrong: what was missed, claimed or stale."""
    found = []
    for score in scores:
        wrong = []
        for d in score.dimensions:
            if d.expected is True and not d.predicted:
                wrong.append(f"missed {d.dimension.value}")
            elif d.expected is False and d.predicted:
                wrong.append(f"claimed {d.dimension.value}")
            if d.mentions_found < d.mentions:
                wrong.append(f"{d.dimension.value} mentions {d.mentions_found}/{d.mentions}")
            if d.stale_shown:
                wrong.append(f"{d.dimension.value} shows a stale value")
        if not score.stage_acceptable:
            accepted = "/".join(stage.value for stage in score.acceptable_stages)
            wrong.append(f"stage {score.stage.value} (wanted {accepted})")
        if wrong:
            found.append(f"`{score.conversation_id}`: " + "; ".join(wrong))
    return found


def results_json(dataset: Dataset, results: Sequence[RunResult]) -> dict[str, Any]:
    return {
        "generated_at": datetime.now(UTC).isoformat(),
        "dataset": str(dataset.path),
        "part": dataset.part,
        "conversations": len(dataset.conversations),
        "bad_lines": [{"line": n, "reason": why} for n, why in dataset.problems],
        "runs": [_run_json(result) for result in results],
    }


def _run_json(result: RunResult) -> dict[str, Any]:
    summary = result.summary
    usage = result.usage
    return {
        "model": result.spec.model,
        "per_batch": result.spec.mode,
        "seconds": round(result.seconds, 3),
        "overall": _tally_json(summary.overall),
        "stage_acceptable": summary.stage_acceptable,
        "stage_acceptable_share": summary.stage_share,
        "dimensions": {d.value: _tally_json(summary.per_dimension[d]) for d in Dimension},
        "extractor": {
            "calls": usage.calls,
            "failed": usage.failed,
            "llm_requests": usage.llm_requests,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cost_usd": "unknown" if usage.cost_usd is None else usage.cost_usd,
            "evidence_dropped": usage.evidence_dropped,
            "microseconds_per_call": usage.microseconds_per_call,
        },
        "conversations": [_conversation_json(score) for score in result.scores],
    }


def _tally_json(tally: Tally) -> dict[str, Any]:
    return {
        "tp": tally.tp,
        "fp": tally.fp,
        "fn": tally.fn,
        "tn": tally.tn,
        "precision": tally.precision,
        "recall": tally.recall,
        "f1": tally.f1,
        "mentions": tally.mentions,
        "mentions_found": tally.mentions_found,
        "mention_share": tally.mention_share,
        "stale": tally.stale,
        "stale_shown": tally.stale_shown,
    }


def _conversation_json(score: ConversationScore) -> dict[str, Any]:
    return {
        "id": score.conversation_id,
        "stage": score.stage.value,
        "stage_acceptable": score.stage_acceptable,
        "dimensions": {
            d.dimension.value: {
                "expected": d.expected,
                "predicted": d.predicted,
                "mentions": d.mentions,
                "mentions_found": d.mentions_found,
                "stale": d.stale,
                "stale_shown": d.stale_shown,
            }
            for d in score.dimensions
        },
    }


def write_chart(results: Sequence[RunResult], path: Path) -> bool:
    """Per-dimension F1, one bar per run; False when matplotlib is not installed (dev extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    dimensions = list(Dimension)
    width = 0.8 / max(1, len(results))
    figure, axes = plt.subplots(figsize=(12, 4.5))
    for index, result in enumerate(results):
        summary = result.summary
        values = [summary.per_dimension[d].f1 or 0.0 for d in dimensions]
        positions = [i + index * width - 0.4 + width / 2 for i in range(len(dimensions))]
        axes.bar(positions, values, width=width, label=result.spec.label)
    axes.set_xticks(range(len(dimensions)))
    axes.set_xticklabels([d.value.replace("_", "\n") for d in dimensions], fontsize=8)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("F1 of identified")
    axes.set_title("Extraction quality per dimension (an undefined F1 is drawn as 0)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def write_outputs(
    dataset: Dataset,
    results: Sequence[RunResult],
    out: Path,
    *,
    note: Callable[[str], None],
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results_json(dataset, results), indent=2) + "\n")
    (out / "report.md").write_text(render_markdown(dataset, results))
    charted = write_chart(results, out / "f1.png")
    written = "results.json, report.md" + (", f1.png" if charted else "")
    note(f"wrote {written} to {out}/" + ("" if charted else " (no chart: matplotlib missing)"))
