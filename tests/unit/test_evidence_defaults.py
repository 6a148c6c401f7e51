"""The evidence check resets an unevidenced dimension's fields to their defaults, made without
pydantic's per-call signature inspection: the made defaults must be pydantic's own."""

from __future__ import annotations

import pydantic
import pytest

from schemas import QualificationExtraction
from schemas.qualification import BANTSignals, MEDDICSignals
from worker.extract.evidence import default_maker


@pytest.mark.parametrize("model", [BANTSignals, MEDDICSignals, QualificationExtraction])
def test_every_made_default_equals_pydantics(model: type[pydantic.BaseModel]) -> None:
    for name, field in model.model_fields.items():
        made = default_maker(model, name)()
        assert made == field.get_default(call_default_factory=True), name


@pytest.mark.parametrize("model", [BANTSignals, MEDDICSignals, QualificationExtraction])
def test_a_factory_default_is_a_fresh_object_per_call(model: type[pydantic.BaseModel]) -> None:
    """A reset list or model must not be shared between extractions."""
    for name, field in model.model_fields.items():
        if field.default_factory is not None:
            make = default_maker(model, name)
            assert make() is not make(), name
