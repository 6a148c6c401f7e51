"""The response models are prepared once for instructor; what is cached must equal what
instructor would build fresh on every call, so caching cannot drift from it."""

from __future__ import annotations

import instructor
import pydantic
import pytest
from instructor.v2.providers.openai.schema import generate_openai_schema
from instructor.v2.validation import async_validators

from schemas import QualificationExtraction
from worker.extract.lean import ExtractedSignals
from worker.extract.llm import _RESPONSE_MODELS
from worker.extract.prompt import ResponseSchema

MODELS: list[tuple[ResponseSchema, type[pydantic.BaseModel]]] = [
    ("lean", ExtractedSignals),
    ("full", QualificationExtraction),
]


@pytest.mark.parametrize(("schema", "model"), MODELS)
def test_the_cached_tool_definition_equals_a_freshly_built_one(
    schema: ResponseSchema, model: type[pydantic.BaseModel]
) -> None:
    fresh = instructor.response_schema(model)  # a new class: nothing of it is cached yet

    assert generate_openai_schema(_RESPONSE_MODELS[schema]) == generate_openai_schema(fresh)


@pytest.mark.parametrize(("schema", "model"), MODELS)
def test_the_cached_json_schema_equals_a_freshly_built_one(
    schema: ResponseSchema, model: type[pydantic.BaseModel]
) -> None:
    cached = _RESPONSE_MODELS[schema]
    fresh = instructor.response_schema(model)

    assert cached.model_json_schema() == fresh.model_json_schema()
    # Other arguments are not cached: they are built as asked.
    assert cached.model_json_schema(mode="serialization") == fresh.model_json_schema(
        mode="serialization"
    )


def test_each_call_gets_its_own_copy_of_the_cached_schema() -> None:
    model = _RESPONSE_MODELS["lean"]
    model.model_json_schema()["properties"].clear()  # a caller changing what it got

    assert model.model_json_schema()["properties"]


class WithAsyncValidator(pydantic.BaseModel):
    name: str

    @async_validators.async_field_validator("name")
    async def check_name(self, value: str) -> str:
        return value


def test_models_other_than_ours_are_still_checked_for_async_validators() -> None:
    with pytest.raises(ValueError, match="async validators are not supported"):
        async_validators.reject_async_validators(WithAsyncValidator)
    async_validators.reject_async_validators(_RESPONSE_MODELS["lean"])  # ours pass
