"""What each CLI command does; worker/__main__.py parses arguments and reports errors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from worker.bootstrap import bootstrap
from worker.settings import Settings
from worker.store.postgres import migrate_database
from worker.tools.arguments import parse_stage, parse_uuid
from worker.tools.views import render_pipeline, render_state


async def migrate(args: argparse.Namespace, settings: Settings) -> int:
    applied = await migrate_database(settings.database_url)
    print(f"applied {', '.join(applied)}" if applied else "database is up to date")
    return 0


async def state(args: argparse.Namespace, settings: Settings) -> int:
    tenant_id = parse_uuid(args.tenant, "TENANT")
    async with bootstrap(settings, pool_size=2) as components:
        found = await components.repository().get_state(tenant_id, args.account, args.contact)
    if found is None:
        print(f"no conversation {args.tenant}:{args.account}:{args.contact}", file=sys.stderr)
        return 1
    print(render_state(found))
    return 0


async def pipeline(args: argparse.Namespace, settings: Settings) -> int:
    tenant_id = parse_uuid(args.tenant, "TENANT")
    stage = parse_stage(args.stage)
    async with bootstrap(settings, pool_size=2) as components:
        states = await components.repository().list_states_by_tenant(tenant_id, stage)
    print(render_pipeline(tenant_id, states, settings.stage_criteria))
    return 0


async def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.workers > 1:
        from worker.tools.processes import check_before_start, supervise

        await check_before_start(settings, args.workers)
        supervise(args.workers)  # blocks this idle event loop until SIGTERM/SIGINT
        return 0
    from worker.app import create_app  # imports litellm: only for the commands that need it
    from worker.ops.http import serve

    await serve(create_app(settings), host=settings.http_host, port=settings.http_port)
    return 0


async def produce(args: argparse.Namespace, settings: Settings) -> int:
    from worker.tools.producer import publish_turns, read_turns

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


async def override(args: argparse.Namespace, settings: Settings) -> int:
    from worker.tools.override import OverrideArguments, new_override
    from worker.tools.producer import publish

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


async def dlq(args: argparse.Namespace, settings: Settings) -> int:
    from worker.tools import dead_letters

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


async def reextract(args: argparse.Namespace, settings: Settings) -> int:
    from worker.tools.reextract import reextract as run_reextract
    from worker.tools.reextract import report

    tenant_id = parse_uuid(args.tenant, "TENANT")
    reextraction = await run_reextract(
        settings, tenant_id, args.account, args.contact, stored_turns=args.all
    )
    text, code = report(reextraction)
    print(text)
    return code


async def forget(args: argparse.Namespace, settings: Settings) -> int:
    from worker.tools.forget import forget as run_forget

    return await run_forget(args, settings)
