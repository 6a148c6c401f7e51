"""A bad value of any setting, for any command, is one line naming the setting and exit 2."""

from __future__ import annotations

import subprocess
import sys
import typing
from pathlib import Path

import pytest
from pydantic.fields import FieldInfo

from worker.__main__ import main
from worker.settings import Settings


def bad_value(info: FieldInfo) -> str | None:
    """A value the field refuses, or None when every string is acceptable (free text)."""
    annotation = info.annotation
    if typing.get_origin(annotation) is typing.Literal:
        return "no-such-choice"
    metadata = info.metadata
    if annotation is int or annotation is float:
        lower = [m.ge for m in metadata if hasattr(m, "ge")] + [
            m.gt for m in metadata if hasattr(m, "gt")
        ]
        return str(int(lower[0]) - 1) if lower else "abc"
    if annotation is bool:
        return "maybe"
    return None


CHECKABLE = {
    name: value
    for name, info in Settings.model_fields.items()
    if (value := bad_value(info)) is not None
}


def test_every_constrained_setting_is_covered() -> None:
    # A guard against the table above silently shrinking: the numeric, boolean and choice
    # settings of today all have a bad value.
    assert {"llm_concurrency", "batch_max_records", "http_port", "log_level", "llm_mode"} <= set(
        CHECKABLE
    )
    assert len(CHECKABLE) >= 25


@pytest.mark.parametrize("command", ["run", "migrate", "demo"])
@pytest.mark.parametrize(("name", "value"), sorted(CHECKABLE.items()))
def test_a_bad_setting_is_one_line_naming_it(
    command: str,
    name: str,
    value: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(name.upper(), value)
    assert main([command]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {name.upper()}: "), err


@pytest.mark.parametrize(
    ("command", "setting"),
    [
        ("run", "LLM_CONCURRENCY=0"),
        ("run", "BATCH_MAX_RECORDS=abc"),
        ("migrate", "HTTP_PORT=-1"),
        ("demo", "LOG_FORMAT=xml"),
    ],
)
def test_the_installed_entry_point_prints_no_traceback(
    command: str, setting: str, repo_root: Path
) -> None:
    name, value = setting.split("=")
    result = subprocess.run(
        [sys.executable, "-m", "worker", command],
        cwd=repo_root,
        env={"PATH": "/usr/bin:/bin", name: value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"error: {name}: ") and "Traceback" not in result.stderr
