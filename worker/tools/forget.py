"""`python -m worker forget TENANT ACCOUNT CONTACT [--yes] [--by NAME]`: erase a conversation.

`forget_conversation` deletes every row of the conversation in one transaction as the tables'
owner (worker/store/erasure.py), then publishes a tombstone (the conversation key, a null
value) on `UPDATE_TOPIC`, so compacted topics and downstream services drop it too. The
tombstone goes out only after the commit: a tombstone for data still in the database would be
a lie. If publishing fails the data is already gone; running `forget` again finds the
erasure record and publishes the tombstone again (the same holds for any repeat: a tombstone
is idempotent for its consumers).

Exit codes: 0 erased (or erased before: tombstone published again); 1 no such conversation,
or the operator said no; 2 bad arguments, or no terminal to confirm on and no `--yes`;
3 erased, but the tombstone could not be published (run `forget` again).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import sys
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from schemas import ConversationKey
from worker.errors import ConfigurationError
from worker.settings import Settings
from worker.store.erasure import Erasure, erase_conversation
from worker.tools.arguments import parse_uuid

EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_TOMBSTONE_FAILED = 3
PUBLISH_TIMEOUT_S = 30.0
MAX_ID_CHARS = 100  # account_id and contact_id (CONTRACT.md section 1)


class TombstoneNotPublished(Exception):
    """The erasure committed but the broker did not take the tombstone."""


@dataclass(frozen=True, kw_only=True)
class ForgetOutcome:
    erasure: Erasure
    tombstone_published: bool


async def forget_conversation(
    settings: Settings, key: ConversationKey, *, erased_by: str
) -> ForgetOutcome:
    """Erase `key` from the database, then publish its tombstone (also when it was erased
    before and nothing was left to delete). Raises TombstoneNotPublished after an erasure
    whose tombstone the broker did not take."""
    erasure = await erase_conversation(settings.database_url, key, erased_by=erased_by)
    if not erasure.found and not erasure.already_erased:
        return ForgetOutcome(erasure=erasure, tombstone_published=False)
    await publish_tombstone(settings, key)
    return ForgetOutcome(erasure=erasure, tombstone_published=True)


async def publish_tombstone(settings: Settings, key: ConversationKey) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_idempotence=settings.kafka_enable_idempotence,
        acks="all",
    )
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT_S):
            await producer.start()
            await producer.send_and_wait(settings.update_topic, key=str(key).encode(), value=None)
    except Exception as error:
        raise TombstoneNotPublished(f"{type(error).__name__}: {error}") from error
    finally:
        with contextlib.suppress(Exception):
            await producer.stop()


def parse_key(args: argparse.Namespace) -> ConversationKey:
    tenant_id = parse_uuid(args.tenant, "TENANT")
    for what, value in (("ACCOUNT", args.account), ("CONTACT", args.contact)):
        if not 1 <= len(value) <= MAX_ID_CHARS or "\x00" in value:
            raise ConfigurationError(f"{what} must be 1..{MAX_ID_CHARS} characters, no NUL")
    return ConversationKey(tenant_id, args.account, args.contact)


def operator_name(given: str | None) -> str:
    if given is not None:
        if not given.strip() or len(given) > 200:
            raise ConfigurationError("--by must be 1..200 characters")
        return given
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return "unknown"


def confirmed(key: ConversationKey) -> bool | None:
    """The operator's answer on a terminal; None when there is no terminal to ask on."""
    if not sys.stdin.isatty():
        return None
    print(
        f"Erase conversation {key} and publish its tombstone? This cannot be undone. "
        "Type 'yes' to erase: ",
        end="",
        file=sys.stderr,
        flush=True,
    )
    return sys.stdin.readline().strip().lower() == "yes"


async def forget(args: argparse.Namespace, settings: Settings) -> int:
    key = parse_key(args)
    erased_by = operator_name(args.by)
    if not args.yes:
        answer = confirmed(key)
        if answer is None:
            print(
                "error: refusing to erase without --yes (no terminal to confirm on)",
                file=sys.stderr,
            )
            return EXIT_USAGE
        if not answer:
            print("nothing erased", file=sys.stderr)
            return EXIT_NOT_FOUND
    try:
        outcome = await forget_conversation(settings, key, erased_by=erased_by)
    except TombstoneNotPublished as error:
        print(
            f"error: conversation {key} was erased from the database, but its tombstone could "
            f"not be published to {settings.update_topic} ({error}); run forget again to "
            "publish it",
            file=sys.stderr,
        )
        return EXIT_TOMBSTONE_FAILED
    return report(outcome, settings.update_topic)


def report(outcome: ForgetOutcome, topic: str) -> int:
    erasure = outcome.erasure
    if not outcome.tombstone_published:
        print(f"no such conversation {erasure.key}", file=sys.stderr)
        return EXIT_NOT_FOUND
    if erasure.already_erased:
        assert erasure.erased_at is not None
        print(
            f"conversation {erasure.key} was already erased at {erasure.erased_at.isoformat()}; "
            f"nothing left to delete; tombstone published again to {topic}"
        )
        return 0
    rows = ", ".join(f"{count} {table}" for table, count in erasure.rows_deleted.items())
    print(f"erased conversation {erasure.key} ({rows}); tombstone published to {topic}")
    return 0
