"""The eval harness scoring the LLM path end to end: real instructor + LiteLLM + HTTP against the
fake OpenAI-compatible server, whose scripted model answers from the dataset's own labels."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import pytest

from devtools import commands
from schemas import DealStage, Dimension
from schemas.dimensions import DIMENSIONS, ValueKind
from tests.eval_conversations import CONVERSATIONS, write_dataset
from tests.fakes.llm_server import EMPTY_EXTRACTION, FakeLLMServer, JsonObject
from worker.qualify.stages import PIPELINE
from worker.settings import load_settings

_STAGE = re.compile(r"^Current stage: (?P<stage>\w+)$", re.M)
_TURN = re.compile(r'<turn [^>]*speaker="(?P<speaker>\w+)"[^>]*>\n(?P<text>.*?)\n</turn>', re.S)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def sent_turns(request: JsonObject) -> list[tuple[str, str]]:
    """(speaker, text) of every turn in the request's prompt."""
    prompt = " ".join(str(m.get("content") or "") for m in request.get("messages", []))
    return [(m.group("speaker"), m.group("text")) for m in _TURN.finditer(prompt)]


def labelled_conversation(texts: list[str]) -> dict[str, Any]:
    """The one labelled conversation all the sent turns belong to."""
    owners = [c for c in CONVERSATIONS if set(texts) <= {turn["text"] for turn in c["turns"]}]
    assert len(owners) == 1, texts
    return owners[0]


def sentence_with(text: str, mention: str) -> str | None:
    return next((s for s in _SENTENCE_END.split(text) if mention.casefold() in s.casefold()), None)


def answer_from_labels(request: JsonObject) -> JsonObject:
    """An oracle model: each labelled-true dimension whose mention the prospect's sent turns
    contain, identified with the sentence that holds it as value and verbatim evidence."""
    turns = sent_turns(request)
    conversation = labelled_conversation([text for _, text in turns])
    extraction: JsonObject = {**EMPTY_EXTRACTION, "bant": {}, "meddic": {}}
    for name, label in conversation["expect"].items():
        if name == "stage" or label["identified"] is not True:
            continue
        dimension = Dimension(name)
        quotes = [
            sentence
            for speaker, text in turns
            if speaker == "prospect"
            for mention in label["mentions"]
            if (sentence := sentence_with(text, mention)) is not None
        ]
        if quotes:
            group = DIMENSIONS.spec(dimension).group.value
            extraction[group] |= identified(dimension, quotes)
    return extraction | {"stage_walk": walk_to_label(request, conversation, turns)}


def walk_to_label(
    request: JsonObject, conversation: dict[str, Any], turns: list[tuple[str, str]]
) -> list[JsonObject]:
    """An oracle's stage walk: from the current stage, one step at a time, to the furthest
    stage the labels accept, each step quoting the first prospect sentence sent (the stage
    machine's exit criteria decide how far it really goes)."""
    prospect = [text for speaker, text in turns if speaker == "prospect"]
    current = _STAGE.search(" ".join(str(m.get("content")) for m in request["messages"]))
    assert current is not None
    stage = DealStage(current.group("stage"))
    target = DealStage(conversation["expect"]["stage"][-1])
    if not prospect or stage not in PIPELINE or target not in PIPELINE:
        return []
    quote = _SENTENCE_END.split(prospect[0])[0]
    path = PIPELINE[PIPELINE.index(stage) + 1 : PIPELINE.index(target) + 1]
    return [{"stage": s.value, "reason": "the labels say so", "quote": quote} for s in path]


def identified(dimension: Dimension, quotes: list[str]) -> JsonObject:
    spec = DIMENSIONS.spec(dimension)
    value_field = spec.values[-1]  # authority: its role
    fields: JsonObject = {
        spec.confidence_field: 0.8,
        spec.evidence_field: quotes,
        value_field.name: quotes if value_field.kind is ValueKind.LIST else quotes[-1],
    }
    if spec.identified_field is not None:
        fields[spec.identified_field] = True
    return fields


@pytest.mark.parametrize("schema", ["lean", "full"])
async def test_eval_scores_the_llm_path_from_an_oracle_model(
    schema: str,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    labelled = [c for c in CONVERSATIONS if c["id"] != "t-rep-pitch"]
    dataset = write_dataset(tmp_path / "d.jsonl", labelled)
    out = tmp_path / "out"
    for name, value in {
        "DATABASE_URL": database_url,
        "LLM_API_KEY": "sk-test-not-a-real-key",
        "LLM_TIMEOUT_S": "5",
        "LLM_TRANSPORT_ATTEMPTS": "1",
        # The same scores with the lean response schema as with the full one (issue 15).
        "LLM_RESPONSE_SCHEMA": schema,
        # The fake model's context is unknown (8,192 tokens assumed): with the stage walk in
        # it, the full schema would leave ~150 tokens for turns and split every conversation.
        "LLM_MAX_PROMPT_TOKENS": "16000",
        # JSON mode (auto's pick for this server) sends the full schema indented: more chunks.
        "LLM_MODE": "tools",
    }.items():
        monkeypatch.setenv(name, value)

    async with FakeLLMServer(reply_builder=answer_from_labels) as server:
        monkeypatch.setenv("LLM_API_BASE", server.base_url)
        args = argparse.Namespace(
            dataset=[str(dataset)], model=["openai/fake-model"], per_batch=None, out=str(out)
        )
        code = await commands.evaluate(args, load_settings())

    assert code == 0
    assert "openai/fake-model per-batch=all" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    runs = {run["per_batch"]: run for run in results["runs"]}
    turns = sum(len(c["turns"]) for c in labelled)
    assert runs["all"]["extractor"]["calls"] == len(labelled)
    assert runs["1"]["extractor"]["calls"] == turns
    assert server.received == len(labelled) + turns  # one request per extraction, no re-asks
    # A whole conversation in one extraction walks as far as one extraction per turn.
    assert runs["all"]["stage_acceptable"] == runs["1"]["stage_acceptable"] == len(labelled)
    finals = {mode: [c["stage"] for c in run["conversations"]] for mode, run in runs.items()}
    assert finals["all"] == finals["1"]
    assert set(finals["all"]) - {"prospecting"}, "the walks moved some deal"
    for run in runs.values():
        extractor = run["extractor"]
        assert extractor["failed"] == 0 and extractor["evidence_dropped"] == 0
        assert extractor["prompt_tokens"] > 0 and extractor["completion_tokens"] > 0
        assert extractor["cost_usd"] == "unknown"  # the fake model has no price: not $0
        overall = run["overall"]
        assert overall["precision"] == 1.0 and overall["recall"] == 1.0
        assert overall["tp"] == 4  # pain, budget, authority, timeline
        assert overall["mention_share"] == 1.0
        assert overall["stale_shown"] == 0
        for name in ("budget", "authority", "timeline", "identify_pain"):
            assert run["dimensions"][name]["f1"] == 1.0
