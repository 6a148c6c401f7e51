"""docs/configuration.md lists every setting the worker reads (docs match behaviour)."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.settings import Settings

CONFIGURATION = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_has_a_row_in_the_configuration_table(name: str) -> None:
    assert f"| `{name.upper()}` |" in CONFIGURATION, (
        f"{name.upper()} is not documented in docs/configuration.md"
    )
