"""What the development commands do (`stack`, `demo`, `eval`): worker/tools/development.py imports
this module when one of them runs, and says so in one line when it is not installed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from devtools.stack import stack_down, stack_status, stack_up_async
from worker.errors import ConfigurationError
from worker.settings import Settings
from worker.store.postgres import migrate_database


async def stack(args: argparse.Namespace, settings: Settings) -> int:
    root = Path(".stack")
    if args.action == "up":
        info = await stack_up_async(root, topics=settings.topics, migrate=migrate_database)
        print(info.export_lines(), end="")
        print(f"# written to {root / 'env.sh'}: run `source {root / 'env.sh'}`", file=sys.stderr)
    elif args.action == "down":
        stopped = stack_down(root)
        print("stack stopped" if stopped else "no stack was running")
    else:
        status = stack_status(root)
        if status is None:
            print("no stack recorded under .stack/")
            return 1
        print(
            f"PostgreSQL {status.info.database_url}: "
            f"{'running' if status.postgres_running else 'stopped'}"
        )
        print(
            f"broker {status.info.kafka_bootstrap_servers}: "
            f"{'running' if status.broker_running else 'stopped'}"
        )
        return 0 if status.all_running else 1
    return 0


async def demo(args: argparse.Namespace, settings: Settings) -> int:
    from devtools.demo import run_demo

    return await run_demo(settings)


async def evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from devtools.evaluation.dataset import DEVELOPMENT, HELD_OUT, read_dataset
    from devtools.evaluation.harness import (
        RunSpec,
        evaluation_database,
        print_progress,
        run_all,
    )
    from devtools.evaluation.report import part_heading, render_table, write_outputs

    sizes = [parse_batch_size(value) for value in args.per_batch or ["all", "1"]]
    models = [parse_model(value) for value in args.model or ["rules"]]
    paths = [Path(value) for value in args.dataset or [HELD_OUT, DEVELOPMENT]]
    datasets = [read_dataset(path) for path in paths]
    for dataset in datasets:
        for line_number, problem in dataset.problems:
            print(f"{dataset.path}:{line_number}: {problem}", file=sys.stderr)
    specs = [RunSpec(model=model, per_batch=size) for model in models for size in sizes]
    async with evaluation_database() as database_url:
        parts = [
            (
                dataset,
                await run_all(dataset, specs, settings, database_url, progress=print_progress),
            )
            for dataset in datasets
        ]
    # One part writes into --out itself; several write one folder each, named after the part.
    several = len(parts) > 1
    for dataset, results in parts:
        if several:
            print(part_heading(dataset))
        print(render_table(results))
        out = Path(args.out) / dataset.part if several else Path(args.out)
        write_outputs(dataset, results, out, note=print_progress)
    return 0


def parse_batch_size(value: str) -> int | None:
    """`all` (every turn of a conversation in one batch) or a positive number of turns."""
    if value == "all":
        return None
    try:
        size = int(value)
    except ValueError:
        size = 0
    if size < 1:
        raise ConfigurationError(f"--per-batch must be 'all' or a positive number, got {value!r}")
    return size


def parse_model(value: str) -> str:
    if not value.strip():
        raise ConfigurationError("--model must be 'rules' or a LiteLLM model string")
    return value.strip()
