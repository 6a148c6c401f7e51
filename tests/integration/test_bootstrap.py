"""One settings object in: the commands use the settings `python -m worker` hands them
(worker/__main__.py loads them once), built on by `bootstrap`."""

from __future__ import annotations

import argparse
import json
import uuid

import pytest

from schemas import ConversationTurn
from tests.harness import turn
from worker.bootstrap import bootstrap
from worker.settings import Settings
from worker.tools import cli


async def test_a_command_reads_the_database_of_the_settings_it_is_given(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """DATABASE_URL in the environment names another database: a command that loaded its own
    settings would not find the conversation."""
    settings = Settings(database_url=database_url, llm_model="rules")
    tenant = uuid.uuid4()
    first = ConversationTurn.model_validate(turn(tenant, "acme", "jane", 0, "We need a CRM."))
    async with bootstrap(settings, pool_size=4) as components:
        await components.service().process_batch([first])
    capsys.readouterr()

    args = argparse.Namespace(tenant=str(tenant), account="acme", contact="jane")
    code = await cli.state(args, settings)

    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["account_id"], printed["version"]) == ("acme", 1)
