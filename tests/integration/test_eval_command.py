"""`python -m worker eval` end to end: a real PostgreSQL, the rules, every output written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.eval_conversations import CONVERSATIONS, write_dataset


def run_eval(repo_root: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "worker", "eval", *args],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def runs_by_mode(out: Path) -> dict[str, dict[str, Any]]:
    results = json.loads((out / "results.json").read_text())
    return {run["per_batch"]: run for run in results["runs"]}


def test_eval_scores_both_batch_modes_and_writes_every_output(
    tmp_path: Path, repo_root: Path, database_url: str
) -> None:
    dataset = write_dataset(tmp_path / "d.jsonl", CONVERSATIONS, '{"id": "broken"}')
    out = tmp_path / "out"

    done = run_eval(repo_root, database_url, "--dataset", str(dataset), "--out", str(out))

    assert done.returncode == 0, done.stderr
    assert f"{dataset}:{len(CONVERSATIONS) + 1}: " in done.stderr  # the bad line, by number
    assert "rules per-batch=all" in done.stdout and "rules per-batch=1" in done.stdout
    assert "budget" in done.stdout and "final stage acceptable" in done.stdout
    assert {p.name for p in out.iterdir()} == {"results.json", "report.md", "f1.png"}
    runs = runs_by_mode(out)
    assert set(runs) == {"all", "1"}
    turns = sum(len(c["turns"]) for c in CONVERSATIONS)
    # All turns at once: one extraction per conversation (its stage walk takes every step);
    # one turn per batch: one call per turn.
    assert runs["all"]["extractor"]["calls"] == len(CONVERSATIONS)
    assert runs["1"]["extractor"]["calls"] == turns
    assert runs["all"]["stage_acceptable"] >= runs["1"]["stage_acceptable"]
    for run in runs.values():
        assert run["extractor"]["cost_usd"] == 0.0  # the rules are free, and known to be
        assert [c["id"] for c in run["conversations"]] == [c["id"] for c in CONVERSATIONS]
        small_talk = next(c for c in run["conversations"] if c["id"] == "t-small-talk")
        assert not any(d["predicted"] for d in small_talk["dimensions"].values())
        assert small_talk["stage"] == "prospecting" and small_talk["stage_acceptable"]
    # One turn per batch, merge rule v2: the revised budget is the current one.
    revised = next(c for c in runs["1"]["conversations"] if c["id"] == "t-revised-budget")
    assert revised["dimensions"]["budget"] == {
        "expected": True,
        "predicted": True,
        "mentions": 1,
        "mentions_found": 1,
        "stale": 1,
        "stale_shown": 0,
    }
    assert "# Extraction quality" in (out / "report.md").read_text()


def test_eval_takes_one_mode_and_refuses_bad_arguments_in_one_line(
    tmp_path: Path, repo_root: Path, database_url: str
) -> None:
    dataset = write_dataset(tmp_path / "d.jsonl", CONVERSATIONS[:1])
    out = tmp_path / "out"

    one_mode = run_eval(
        repo_root, database_url, "--dataset", str(dataset), "--per-batch", "2", "--out", str(out)
    )
    bad_size = run_eval(repo_root, database_url, "--dataset", str(dataset), "--per-batch", "x")
    missing = run_eval(repo_root, database_url, "--dataset", str(tmp_path / "none.jsonl"))
    unreachable = run_eval(
        repo_root, "postgresql://postgres@127.0.0.1:1/x", "--dataset", str(dataset)
    )

    assert one_mode.returncode == 0, one_mode.stderr
    assert list(runs_by_mode(out)) == ["2"]
    # 5 turns, 2 per batch: 3 batches, one extraction each.
    assert runs_by_mode(out)["2"]["extractor"]["calls"] == 3
    for failed, says in (
        (bad_size, "--per-batch"),
        (missing, "cannot read dataset"),
        (unreachable, "cannot reach PostgreSQL"),
    ):
        assert failed.returncode == 2
        errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and says in errors[0]
        assert "Traceback" not in failed.stderr


def test_eval_scores_each_dataset_as_its_own_part_in_its_own_folder(
    tmp_path: Path, repo_root: Path, database_url: str
) -> None:
    held_out = write_dataset(tmp_path / "held_out.jsonl", CONVERSATIONS[:1])
    development = write_dataset(tmp_path / "development.jsonl", CONVERSATIONS[1:])
    out = tmp_path / "out"

    done = run_eval(
        repo_root,
        database_url,
        *("--dataset", str(held_out), "--dataset", str(development)),
        *("--per-batch", "1", "--out", str(out)),
    )

    assert done.returncode == 0, done.stderr
    # Held-out first, as given: each part's heading, then its table.
    first = done.stdout.index(f"== held_out: {held_out} (1 conversations, 5 turns)")
    second = done.stdout.index(f"== development: {development} (3 conversations,")
    assert first < second
    assert done.stdout.count("final stage acceptable") == 2
    assert {p.name for p in out.iterdir()} == {"held_out", "development"}
    for part, conversations in (
        ("held_out", CONVERSATIONS[:1]),
        ("development", CONVERSATIONS[1:]),
    ):
        results = json.loads((out / part / "results.json").read_text())
        assert results["part"] == part and results["conversations"] == len(conversations)
        assert [c["id"] for c in results["runs"][0]["conversations"]] == [
            c["id"] for c in conversations
        ]
        assert f"# Extraction quality: {part}" in (out / part / "report.md").read_text()
