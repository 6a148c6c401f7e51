"""Figures from a scenario's raw measurements; the table, bench/results.json and the chart."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil  # type: ignore[import-untyped]

from tests.bench.measure import Run, percentile

if TYPE_CHECKING:
    from tests.bench.run import Plan, Scenario

TOKEN_TURNS = (10, 200)  # prompt tokens per call are compared at these turns of a conversation


# --- per scenario --------------------------------------------------------------------------


def summarize(sc: Scenario, run: Run, payloads: list[dict[str, Any]]) -> dict[str, Any]:
    applied = max(1, run.stored_turns)
    requests = run.requests
    ready, end = run.ready, run.end
    prompt = sum(r["prompt_tokens"] for r in requests)
    worker_cpu = run.worker_total_cpu_s - ready.worker
    busy_s = max(1e-9, end.at - ready.at)
    return {
        "name": sc.name,
        "workload": sc.workload,
        "llm_latency_ms": sc.latency_ms,
        "settings": dict(sc.env),
        "note": sc.note,
        "turns_published": len(payloads),
        "turns_applied": run.stored_turns,
        "turns_announced": len(run.seen),
        "complete": run.complete,
        "cap_s": sc.cap_s,
        "startup_s": ready.at - run.spawned,
        "turns_per_s": throughput(run, live=sc.live),
        "llm_calls": len(requests),
        "llm_calls_per_turn": len(requests) / applied,
        "turns_per_call": applied / max(1, len(requests)),
        "prompt_tokens_per_call": prompt / max(1, len(requests)),
        "prompt_tokens_per_turn": prompt / applied,
        "prompt_tokens_by_turn": tokens_by_turn(requests),
        "prompt_tokens_curve": tokens_curve(requests),
        "latency_s": latency(run) if sc.live else None,
        "worker_cpu_s_per_1k_turns": worker_cpu / applied * 1000,
        "worker_startup_cpu_s": ready.worker,
        "worker_peak_rss_mb": run.worker_peak_rss_mb,
        "worker_rss_mb_by_process": run.worker_rss_by_process,
        "other_cpu_s_per_1k_turns": {
            name: (getattr(end, name) - getattr(ready, name)) / applied * 1000
            for name in ("llm", "postgres", "broker", "bench")
        },
        "cores_busy": sum(
            getattr(end, n) - getattr(ready, n)
            for n in ("worker", "llm", "postgres", "broker", "bench")
        )
        / busy_s,
        "pg_commits_per_turn": run.commits / applied,
        "pg_statements_per_turn": run.statements / applied,
        "update_events": run.events,
        "worker_exit_code": run.exit_code,
    }


def throughput(run: Run, *, live: bool) -> float:
    """Turns announced per second: from the worker being ready (backlog) or from the first
    publish (live) to the last announcement; for a capped run, to the cap."""
    seen = run.seen
    if not seen:
        return 0.0
    start = min(run.sent.values()) if live and run.sent else run.ready.at
    stop = max(seen.values()) if run.complete else run.end.at
    return len(seen) / max(1e-9, stop - start)


def latency(run: Run) -> dict[str, float | None]:
    """Publish → first update naming the turn. A turn never announced counts as infinite."""
    sent, seen = run.sent, run.seen
    values = [seen[k] - t if k in seen else math.inf for k, t in sent.items()]
    return {f"p{q}": percentile(values, q) for q in (50, 95, 99)} | {
        "max": max(values, default=None)
    }


def tokens_by_turn(requests: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """For calls carrying a conversation's 10th (200th) turn: median prompt tokens, turns per
    call, and prompt tokens without the new turns (instructions, schema, known-state summary)."""
    out: dict[str, dict[str, float]] = {}
    for k in TOKEN_TURNS:
        calls = [r for r in requests if any(t == k for _, t in r["refs"])]
        if calls:
            out[str(k)] = {
                "calls": len(calls),
                "median_prompt_tokens": statistics.median(r["prompt_tokens"] for r in calls),
                "median_turns_per_call": statistics.median(r["turns"] for r in calls),
                "median_tokens_besides_turns": statistics.median(
                    r["prompt_tokens"] - r["turns_tokens"] for r in calls
                ),
            }
    return out


def tokens_curve(requests: Sequence[dict[str, Any]], step: int = 10) -> dict[str, float]:
    """Median prompt tokens per call by the conversation turn it reaches (buckets of `step`)."""
    buckets: dict[int, list[int]] = {}
    for r in requests:
        if r["refs"]:
            last = max(t for _, t in r["refs"])
            buckets.setdefault(last // step * step, []).append(r["prompt_tokens"])
    return {str(k): statistics.median(v) for k, v in sorted(buckets.items())}


def one_line(r: dict[str, Any]) -> str:
    lat = r["latency_s"] or {}
    p99 = lat.get("p99")
    return (
        f"{r['turns_applied']} turns, {r['turns_per_s']:.0f} turns/s, "
        f"{r['llm_calls_per_turn']:.3f} calls/turn, "
        f"CPU {r['worker_cpu_s_per_1k_turns']:.2f} s/1k turns"
        + (f", p99 {_secs(p99)}" if lat else "")
        + ("" if r["complete"] else f" (capped at {r['cap_s']:.0f} s)")
    )


# --- the whole run ---------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def comparisons(results: list[dict[str, Any]]) -> dict[str, float | None]:
    by = {r["name"]: r for r in results}
    w1, base, slow = by.get("W1-0ms"), by.get("W1-baseline"), by.get("W1-800ms")
    w3 = by.get("W3-tokens")
    out: dict[str, float | None] = {}
    if w1 and base:
        out["calls_per_turn_baseline_over_w1"] = _ratio(
            base["llm_calls_per_turn"], w1["llm_calls_per_turn"]
        )
        out["throughput_w1_over_baseline"] = _ratio(w1["turns_per_s"], base["turns_per_s"])
    if w1 and slow:
        out["throughput_800ms_over_0ms"] = _ratio(slow["turns_per_s"], w1["turns_per_s"])
    if w3:
        tokens = w3["prompt_tokens_by_turn"]
        if all(str(k) in tokens for k in TOKEN_TURNS):
            first, last = (tokens[str(k)]["median_prompt_tokens"] for k in TOKEN_TURNS)
            out["prompt_tokens_turn200_over_turn10"] = _ratio(last, first)
    return out


def targets(results: list[dict[str, Any]], comp: dict[str, float | None]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured figure and whether it was met."""
    by = {r["name"]: r for r in results}
    checks: list[tuple[str, float | None, bool | None]] = []

    def check(name: str, value: float | None, ok: bool | None) -> None:
        checks.append((name, value, None if value is None else ok))

    if w1 := by.get("W1-0ms"):
        check("W1 0 ms: >= 1000 turns/s", w1["turns_per_s"], w1["turns_per_s"] >= 1000)
        cpu = w1["worker_cpu_s_per_1k_turns"]
        check("W1 0 ms: worker CPU < 1 s per 1000 turns", cpu, cpu < 1)
    if (v := comp.get("calls_per_turn_baseline_over_w1")) is not None:
        check("W1: >= 5x fewer LLM calls than per-turn", v, v >= 5)
    if (v := comp.get("throughput_w1_over_baseline")) is not None:
        check("W1: >= 3x the per-turn throughput", v, v >= 3)
    if (v := comp.get("throughput_800ms_over_0ms")) is not None:
        check("W1 800 ms: >= 50% of 0 ms throughput", v, v >= 0.5)
    if (v := comp.get("prompt_tokens_turn200_over_turn10")) is not None:
        check("prompt tokens/call turn 200 vs 10 within 20%", v, abs(v - 1) <= 0.2)
    for name, limit in (("W2-0ms", 1.0), ("W2-800ms", 1.8), ("W2-0ms-half", 1.0)):
        if (r := by.get(name)) and r["latency_s"]:
            p99 = r["latency_s"]["p99"]
            check(f"{name}: p99 < {limit:g} s", p99, p99 is not None and p99 < limit)
    if results:
        rss = max(r["worker_peak_rss_mb"] for r in results)
        check("peak RSS < 250 MB (all scenarios)", rss, rss < 250)
    return [{"target": n, "measured": v, "met": ok} for n, v, ok in checks]


def document(
    plan: Plan, results: list[dict[str, Any]], elapsed_s: float, *, durable: bool
) -> dict[str, Any]:
    comp = comparisons(results)
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "postgres_durable": durable,
        "plan": plan.__dict__,
        "elapsed_s": elapsed_s,
        "scenarios": results,
        "comparisons": comp,
        "targets": targets(results, comp),
    }


def write(doc: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(doc, indent=2, default=_jsonable) + "\n")
    m = doc["machine"]
    print(f"\n{doc['date']}: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, {m['os']}")
    durable = doc["postgres_durable"]
    print(f"PostgreSQL durable (fsync on): {durable}; the run took {doc['elapsed_s']:.0f} s")
    print()
    print(table(doc["scenarios"]))
    print()
    print(cpu_table(doc["scenarios"]))
    print()
    for line in summary_lines(doc):
        print(line)
    chart_path = out / "results.png"
    chart(doc, chart_path)
    print(f"\nresults: {out / 'results.json'}\nchart:   {chart_path}")


# --- text ------------------------------------------------------------------------------------

COLUMNS = (
    ("scenario", 12),
    ("turns", 6),
    ("turns/s", 8),
    ("calls/turn", 10),
    ("tok/call", 8),
    ("tok/turn", 8),
    ("p50", 7),
    ("p95", 7),
    ("p99", 7),
    ("CPU s/1k", 8),
    ("RSS MB", 6),
    ("PG tx/turn", 10),
    ("PG st/turn", 10),
)


def table(results: list[dict[str, Any]]) -> str:
    head = " ".join(f"{name:>{width}}" for name, width in COLUMNS)
    lines = [head, "-" * len(head)]
    for r in results:
        lat = r["latency_s"] or {}
        cells = [
            r["name"] + ("*" if not r["complete"] else ""),
            str(r["turns_applied"]),
            f"{r['turns_per_s']:.0f}",
            f"{r['llm_calls_per_turn']:.3f}",
            f"{r['prompt_tokens_per_call']:.0f}",
            f"{r['prompt_tokens_per_turn']:.0f}",
            _secs(lat.get("p50")),
            _secs(lat.get("p95")),
            _secs(lat.get("p99")),
            f"{r['worker_cpu_s_per_1k_turns']:.2f}",
            f"{r['worker_peak_rss_mb']:.0f}",
            f"{r['pg_commits_per_turn']:.2f}",
            f"{r['pg_statements_per_turn']:.2f}",
        ]
        lines.append(" ".join(f"{c:>{w}}" for c, (_, w) in zip(cells, COLUMNS, strict=True)))
    if any(not r["complete"] for r in results):
        lines.append("* capped: the figures are rates over the part processed within the cap")
    return "\n".join(lines)


def cpu_table(results: list[dict[str, Any]]) -> str:
    """Where the machine's cores went while each scenario ran (CPU s per 1000 turns)."""
    names = ("worker", "llm", "postgres", "broker", "bench")
    head = f"{'CPU s/1k turns':>14} " + " ".join(f"{n:>8}" for n in names) + f" {'cores busy':>10}"
    lines = [head, "-" * len(head)]
    for r in results:
        other = r["other_cpu_s_per_1k_turns"]
        cells = [r["worker_cpu_s_per_1k_turns"], *(other[n] for n in names[1:])]
        row = " ".join(f"{c:>8.2f}" for c in cells)
        lines.append(f"{r['name']:>14} {row} {r['cores_busy']:>10.2f}")
    lines.append("llm: the fake LLM server; bench: this process (producer and update reader)")
    return "\n".join(lines)


def summary_lines(doc: dict[str, Any]) -> list[str]:
    lines = [f"{k}: {_num(v)}" for k, v in doc["comparisons"].items()]
    for r in doc["scenarios"]:
        if tokens := r["prompt_tokens_by_turn"]:
            parts = [
                f"turn {k}: {v['median_prompt_tokens']:.0f} tok/call "
                f"({v['median_turns_per_call']:.0f} turns/call, "
                f"{v['median_tokens_besides_turns']:.0f} besides the turns)"
                for k, v in tokens.items()
            ]
            lines.append(f"{r['name']} prompt tokens by turn: " + ", ".join(parts))
    lines.append("targets (reported, not asserted):")
    for t in doc["targets"]:
        mark = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
        lines.append(f"  [{mark:>6}] {t['target']}: {_num(t['measured'])}")
    return lines


def _secs(value: float | None) -> str:
    if value is None:
        return "-"
    return "never" if math.isinf(value) else f"{value:.2f}s"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and math.isinf(value):
        return None
    return str(value)


# --- the chart -------------------------------------------------------------------------------


def chart(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = doc["scenarios"]
    names = [r["name"] for r in results]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    axes[0][0].bar(names, [r["turns_per_s"] for r in results], color="tab:blue")
    axes[0][0].set_title("throughput, turns/s end to end")
    axes[0][1].bar(names, [r["llm_calls_per_turn"] for r in results], color="tab:orange")
    axes[0][1].set_title("LLM calls per turn")
    _latency_panel(axes[1][0], [r for r in results if r["latency_s"]])
    _token_panel(axes[1][1], results)
    for ax in (axes[0][0], axes[0][1]):
        ax.tick_params(axis="x", labelrotation=30)
    fig.suptitle(f"qualification worker benchmark, {doc['date']}, {doc['machine']['cores']} cores")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _latency_panel(ax: Any, live: list[dict[str, Any]]) -> None:
    quantiles = ("p50", "p95", "p99")
    width = 0.25
    for i, q in enumerate(quantiles):
        values = [_finite(r["latency_s"][q]) for r in live]
        xs = [x + i * width for x in range(len(live))]
        ax.bar(xs, values, width, label=q)
        for x, r in zip(xs, live, strict=True):
            if _finite(r["latency_s"][q]) == 0.0:  # some turns never announced within the cap
                ax.text(x, 0, "never", rotation=90, ha="center", va="bottom", fontsize=8)
    ax.set_xticks([x + width for x in range(len(live))], [r["name"] for r in live])
    ax.set_title("produce → update latency, s (live scenarios; 'never': not within the cap)")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.legend()


def _token_panel(ax: Any, results: list[dict[str, Any]]) -> None:
    for r in results:
        curve = r["prompt_tokens_curve"]
        if len(curve) >= 5:  # conversations long enough to show a trend
            ax.plot([int(k) for k in curve], list(curve.values()), ".-", label=r["name"])
    ax.set_title("median prompt tokens per call, by turn of the conversation")
    ax.set_xlabel("turn")
    ax.set_ylim(bottom=0)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()


def _finite(value: float | None) -> float:
    return 0.0 if value is None or math.isinf(value) else value
