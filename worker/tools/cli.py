"""What each CLI command does; worker/__main__.py parses arguments and reports errors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from uuid import UUID

from schemas import ConversationState, DealStage, Dimension, is_identified
from worker.errors import ConfigurationError
from worker.settings import load_settings
from worker.store.database import connect, create_pool
from worker.store.database import migrate as apply_migrations
from worker.store.repositories import ConversationStateRepository


def parse_uuid(value: str, what: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise ConfigurationError(f"{what} must be a UUID, got {value!r}") from None


def parse_stage(value: str | None) -> DealStage | None:
    if value is None:
        return None
    try:
        return DealStage(value)
    except ValueError:
        choices = ", ".join(stage.value for stage in DealStage)
        raise ConfigurationError(f"unknown stage {value!r}; one of: {choices}") from None


async def migrate(args: argparse.Namespace) -> int:
    conn = await connect(load_settings().database_url)
    try:
        applied = await apply_migrations(conn)
    finally:
        await conn.close()
    print(f"applied {', '.join(applied)}" if applied else "database is up to date")
    return 0


async def state(args: argparse.Namespace) -> int:
    tenant_id = parse_uuid(args.tenant, "TENANT")
    settings = load_settings()
    pool = await create_pool(settings.database_url, max_size=2, role=settings.db_role)
    try:
        found = await ConversationStateRepository(pool=pool).get_state(
            tenant_id, args.account, args.contact
        )
    finally:
        await pool.close()
    if found is None:
        print(f"no conversation {args.tenant}:{args.account}:{args.contact}", file=sys.stderr)
        return 1
    print(render_state(found))
    return 0


def render_state(found: ConversationState) -> str:
    """The whole state as JSON: owners (who owns which dimension since when) and suggestions
    (the AI's differing views of owned dimensions) included."""
    return found.model_dump_json(indent=2)


async def pipeline(args: argparse.Namespace) -> int:
    tenant_id = parse_uuid(args.tenant, "TENANT")
    stage = parse_stage(args.stage)
    settings = load_settings()
    pool = await create_pool(settings.database_url, max_size=2, role=settings.db_role)
    try:
        states = await ConversationStateRepository(pool=pool).list_states_by_tenant(
            tenant_id, stage
        )
    finally:
        await pool.close()
    print(render_pipeline(tenant_id, states))
    return 0


BANT = (Dimension.BUDGET, Dimension.AUTHORITY, Dimension.NEED, Dimension.TIMELINE)
MEDDIC = (
    Dimension.METRICS,
    Dimension.ECONOMIC_BUYER,
    Dimension.DECISION_CRITERIA,
    Dimension.DECISION_PROCESS,
    Dimension.IDENTIFY_PAIN,
    Dimension.CHAMPION,
)
PIPELINE_LEGEND = (
    "BANT/MEDDIC: a letter per identified dimension, · where not; "
    "* after it: owned by a person (extractions only suggest)"
)


def render_pipeline(tenant_id: UUID, states: list[ConversationState]) -> str:
    header = (
        f"{'ACCOUNT':<24} {'CONTACT':<22} {'STAGE':<13} {'CONF':>4} {'TURNS':>5}  "
        f"{'BANT':<8}  MEDDIC"
    )
    lines = [f"tenant {tenant_id}: {len(states)} conversation(s)", header, "-" * len(header)]
    for s in states:
        lines.append(
            f"{s.account_id[:24]:<24} {s.contact_id[:22]:<22} {s.deal_stage.value:<13} "
            f"{s.confidence_score:>4.2f} {s.interaction_count:>5}  "
            f"{bant_flags(s):<8}  {meddic_flags(s)}".rstrip()
        )
    if any(s.owners for s in states):
        lines.append(PIPELINE_LEGEND)
    return "\n".join(lines)


def bant_flags(state: ConversationState) -> str:
    """'BA*·T': the letter of each identified dimension, a dot for the others; `*` after the
    dimensions a person owns."""
    return _flags(state, BANT, "BANT")


def meddic_flags(state: ConversationState) -> str:
    return _flags(state, MEDDIC, "MEDDIC")


def _flags(state: ConversationState, dimensions: tuple[Dimension, ...], letters: str) -> str:
    return "".join(
        (letter if is_identified(state.qualification, dimension) else "·")
        + ("*" if dimension.value in state.owners else "")
        for letter, dimension in zip(letters, dimensions, strict=True)
    )


async def run(args: argparse.Namespace) -> int:
    from worker.app import create_app  # imports litellm: only for the commands that need it
    from worker.ops.http import serve

    settings = load_settings()
    await serve(create_app(settings), host=settings.http_host, port=settings.http_port)
    return 0


async def produce(args: argparse.Namespace) -> int:
    from worker.tools.producer import publish_turns, read_turns

    settings = load_settings()
    turns = read_turns(Path(args.file), max_turn_chars=settings.max_turn_chars)
    for line_number, problem in turns.problems:
        print(f"{args.file}:{line_number}: {problem}", file=sys.stderr)
    if turns.problems and not args.skip_invalid:
        print(
            f"nothing published: {len(turns.problems)} invalid line(s) "
            "(fix them, or pass --skip-invalid to publish the valid ones)",
            file=sys.stderr,
        )
        return 1
    sent = await publish_turns(turns.valid, settings)
    print(f"published {sent} turn(s) to {settings.turn_topic}")
    return 1 if turns.problems else 0


async def override(args: argparse.Namespace) -> int:
    from worker.tools.override import OverrideArguments, new_override
    from worker.tools.producer import publish

    settings = load_settings()
    event = new_override(
        OverrideArguments(
            tenant=args.tenant,
            account=args.account,
            contact=args.contact,
            actor=args.actor,
            sets=args.sets,
            locks=args.locks,
            unlocks=args.unlocks,
            stage=args.stage,
            reason=args.reason,
        )
    )
    value = event.to_json()
    record = (str(event.key).encode(), value.encode())
    await publish([record], topic=settings.override_topic, settings=settings)
    print(value)
    print(f"published override {event.event_id} to {settings.override_topic}", file=sys.stderr)
    return 0


async def migrate_url(database_url: str) -> None:
    conn = await connect(database_url)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()


async def stack(args: argparse.Namespace) -> int:
    from worker.tools import stack as embedded

    root = Path(".stack")
    if args.action == "up":
        settings = load_settings()
        topics = [
            settings.turn_topic,
            settings.override_topic,
            settings.update_topic,
            settings.dlq_topic,
        ]
        info = await embedded.stack_up_async(root, topics=topics, migrate=migrate_url)
        print(info.export_lines(), end="")
        print(f"# written to {root / 'env.sh'}: run `source {root / 'env.sh'}`", file=sys.stderr)
    elif args.action == "down":
        stopped = embedded.stack_down(root)
        print("stack stopped" if stopped else "no stack was running")
    else:
        status = embedded.stack_status(root)
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


async def demo(args: argparse.Namespace) -> int:
    from worker.tools.demo import run_demo

    return await run_demo(load_settings())


async def dlq(args: argparse.Namespace) -> int:
    from worker.tools import dead_letters

    settings = load_settings()
    found = (
        dead_letters.read_file(Path(args.file))
        if args.file
        else await dead_letters.read_topic(settings)
    )
    found = [f for f in found if args.error is None or f.letter.error == args.error]
    if args.action == "replay":
        return await dead_letters.replay(found, settings, dry_run=args.dry_run)
    if args.json:
        for f in found:
            print(f.letter.model_dump_json())
    else:
        print(dead_letters.render(found))
    return 0


async def reextract(args: argparse.Namespace) -> int:
    from worker.tools.reextract import reextract as run_reextract
    from worker.tools.reextract import report

    tenant_id = parse_uuid(args.tenant, "TENANT")
    outcomes = await run_reextract(
        load_settings(), tenant_id, args.account, args.contact, stored_turns=args.all
    )
    text, code = report(outcomes)
    print(text)
    return code
