"""Writes the JSON Schema of each event type into schemas/json/ (`python -m schemas.export`)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from schemas.events import ConversationTurn, DeadLetter, QualificationUpdated
from schemas.override import QualificationOverride

JSON_DIR = Path(__file__).parent / "json"
EVENT_MODELS: dict[str, type[BaseModel]] = {
    "conversation_turn": ConversationTurn,
    "qualification_override": QualificationOverride,
    "qualification_updated": QualificationUpdated,
    "dead_letter": DeadLetter,
}


def render(model: type[BaseModel]) -> str:
    return json.dumps(model.model_json_schema(by_alias=True), indent=2, sort_keys=True) + "\n"


def main() -> None:
    for name, model in EVENT_MODELS.items():
        (JSON_DIR / f"{name}.json").write_text(render(model))
        print(f"wrote {JSON_DIR / name}.json")


if __name__ == "__main__":
    main()
