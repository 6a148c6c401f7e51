"""docs/asyncapi.yaml is what FastStream generates from the service now (`make docs`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from schemas import ConversationTurn, DeadLetter, QualificationOverride, QualificationUpdated


def generate(repo_root: Path, out: Path) -> str:
    """Runs exactly what `make docs` runs, with topic settings in the environment that the
    document must not pick up (it documents the contract's defaults)."""
    env = {**os.environ, "TURN_TOPIC": "elsewhere", "UPDATE_TOPIC": "x", "DLQ_TOPIC": "y"}
    command = [sys.executable, "-m", "worker.tools.asyncapi_document", str(out)]
    subprocess.run(command, cwd=repo_root, env=env, check=True, capture_output=True)
    return out.read_text()


def test_asyncapi_document_is_up_to_date(repo_root: Path, tmp_path: Path) -> None:
    generated = generate(repo_root, tmp_path / "asyncapi.yaml")
    committed = (repo_root / "docs" / "asyncapi.yaml").read_text()
    assert generated == committed, "docs/asyncapi.yaml is stale: run `make docs` and commit it"


def test_asyncapi_document_shows_the_four_topics_and_their_payloads(repo_root: Path) -> None:
    document = yaml.safe_load((repo_root / "docs" / "asyncapi.yaml").read_text())
    channels = {channel["address"] for channel in document["channels"].values()}
    assert channels == {
        "conversation.turn",
        "qualification.override",
        "qualification.updated",
        "conversation.turn.dlq",
    }
    actions = {op["action"] for op in document["operations"].values()}
    assert actions == {"receive", "send"}
    schemas = document["components"]["schemas"]
    for model in (ConversationTurn, QualificationOverride, QualificationUpdated, DeadLetter):
        fields = set(model.model_json_schema(by_alias=True)["properties"])
        documented = [s for s in schemas.values() if set(s.get("properties", {})) == fields]
        assert documented, f"no payload schema with the fields of {model.__name__}"
