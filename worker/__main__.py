"""The command line: `python -m worker …` (also installed as `qualification-worker`).

Every command reports failure as one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, get_args

from schemas.events import DeadLetterReason
from worker.errors import WorkerError
from worker.ops.logs import configure_logging
from worker.settings import Settings, load_settings
from worker.tools import cli, development
from worker.tools.event_loop import run_on_event_loop

EXIT_USAGE = 2  # bad configuration, unreachable dependency, bad input
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM

# Each command gets the one Settings object loaded here.
Command = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments are one line on stderr and exit 2, like every other bad input."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m worker", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="consume turns until SIGTERM/SIGINT")
    run.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        metavar="N",
        help="N worker processes, each a member of the consumer group; a dead one is replaced "
        "(default: %(default)s)",
    )
    run.set_defaults(fn=cli.run)
    sub.add_parser("migrate", help="apply sql/migrations").set_defaults(fn=cli.migrate)
    stack = sub.add_parser("stack", help="the embedded local stack (PostgreSQL + broker)")
    stack.add_argument("action", choices=["up", "down", "status"])
    stack.set_defaults(fn=development.stack)
    produce = sub.add_parser("produce", help="publish turns from a JSONL file, keyed")
    produce.add_argument("file")
    produce.add_argument(
        "--skip-invalid", action="store_true", help="publish the valid lines even if some are not"
    )
    produce.set_defaults(fn=cli.produce)
    state = sub.add_parser("state", help="print one conversation's state as JSON")
    for name in ("tenant", "account", "contact"):
        state.add_argument(name)
    state.set_defaults(fn=cli.state)
    pipeline = sub.add_parser("pipeline", help="table of a tenant's conversations")
    pipeline.add_argument("tenant")
    pipeline.add_argument("--stage", default=None)
    pipeline.set_defaults(fn=cli.pipeline)
    sub.add_parser("demo", help="the main job end to end on the embedded stack").set_defaults(
        fn=development.demo
    )
    add_operator_commands(sub)
    return parser


def add_operator_commands(sub: Any) -> None:
    add_dlq_command(sub)
    add_reextract_command(sub)
    add_forget_command(sub)
    add_eval_command(sub)
    add_override_command(sub)


def add_dlq_command(sub: Any) -> None:
    dlq = sub.add_parser("dlq", help="list dead letters; re-publish fixed ones to TURN_TOPIC")
    dlq.add_argument("action", choices=["list", "replay"])
    dlq.add_argument("--error", choices=list(get_args(DeadLetterReason)), help="only this reason")
    dlq.add_argument("--json", action="store_true", help="list: the dead letters as JSON lines")
    dlq.add_argument(
        "--file", help="replay (or list) dead letters from a file of `list --json` lines"
    )
    dlq.add_argument("--dry-run", action="store_true", help="replay: validate, publish nothing")
    dlq.set_defaults(fn=cli.dlq)


def add_reextract_command(sub: Any) -> None:
    reextract = sub.add_parser(
        "reextract", help="extract stored turns again; each result is a new state version"
    )
    reextract.add_argument("tenant")
    reextract.add_argument("account", nargs="?")
    reextract.add_argument("contact", nargs="?")
    reextract.add_argument(
        "--all",
        action="store_true",
        help="every selected conversation from its latest turns (after a prompt or model "
        "change), not only those whose extraction failed",
    )
    reextract.set_defaults(fn=cli.reextract)


def add_forget_command(sub: Any) -> None:
    forget = sub.add_parser(
        "forget",
        help="erase a conversation (state, turns, history, outbox) and publish its tombstone",
    )
    for name in ("tenant", "account", "contact"):
        forget.add_argument(name)
    forget.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    forget.add_argument(
        "--by", default=None, help="who requested or ran the erasure (default: the OS user)"
    )
    forget.set_defaults(fn=cli.forget)


def add_eval_command(sub: Any) -> None:
    evaluate = sub.add_parser("eval", help="score extraction against a labelled dataset")
    evaluate.add_argument(
        "--dataset",
        action="append",
        help="labelled conversations, JSON Lines; repeatable, each scored as its own part "
        "(default: examples/eval/held_out.jsonl, then examples/eval/development.jsonl)",
    )
    evaluate.add_argument(
        "--model",
        action="append",
        help="'rules' (default) or a LiteLLM model string (LLM_API_BASE/LLM_API_KEY); repeatable",
    )
    evaluate.add_argument(
        "--per-batch",
        action="append",
        metavar="N",
        help="turns per batch: 'all' or a number; repeatable (default: all and 1)",
    )
    evaluate.add_argument("--out", default="eval", help="output directory (default: %(default)s)")
    evaluate.set_defaults(fn=development.evaluate)


def add_override_command(sub: Any) -> None:
    override = sub.add_parser(
        "override",
        help="publish a person's correction (QualificationOverride) to OVERRIDE_TOPIC",
        description="Publish a QualificationOverride: set dimension values (which makes them "
        "human-owned), lock or unlock dimensions, or move the deal to any stage.",
    )
    for name in ("tenant", "account", "contact"):
        override.add_argument(name)
    override.add_argument("--actor", help="who corrects: TYPE:ID, TYPE one of user, crm, system")
    override.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="DIM.FIELD=VALUE",
        help="a value field (empty VALUE clears it; repeat a list field such as "
        "competition.competitors for each item), DIM.identified=true|false, "
        "DIM.confidence=0..1, or DIM alone to confirm the stored values",
    )
    override.add_argument("--lock", dest="locks", action="append", default=[], metavar="DIM")
    override.add_argument("--unlock", dest="unlocks", action="append", default=[], metavar="DIM")
    override.add_argument("--stage", help="move the deal to this stage (any stage)")
    override.add_argument("--reason", help="why the deal moves (required with --stage)")
    override.set_defaults(fn=cli.override)


async def stopped_by_sigterm(command: Coroutine[Any, Any, int]) -> int:
    """SIGTERM stops a tool the way Ctrl-C does: its task is cancelled, so what it started (an
    embedded PostgreSQL, a worker process, a temporary folder) is stopped and removed on the way
    out. Python's default SIGTERM ends the process at once and leaves them behind."""
    task = asyncio.current_task()
    assert task is not None  # we run inside asyncio.run
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await command
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command: Command = args.fn
    try:
        # Every setting is checked before any command starts, whatever it uses: a bad value
        # is one line naming it (exit 2), never a traceback from deep inside a library.
        settings = load_settings()
        # Before anything logs; logs go to stderr so stdout stays the command's output. eval
        # runs many conversations: an INFO line per version would bury its progress lines.
        quiet = args.command == "eval" and "log_level" not in settings.model_fields_set
        configure_logging("WARNING" if quiet else settings.log_level, settings.log_format)
        if args.command == "run":  # the worker drains on SIGTERM itself (FastStream)
            return run_on_event_loop(command(args, settings))
        return asyncio.run(stopped_by_sigterm(command(args, settings)))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except asyncio.CancelledError:
        return EXIT_TERMINATED
    except WorkerError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
