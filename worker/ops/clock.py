"""The one wall clock. Whatever stamps or compares times (the service, the sweepers, the
scheduler, the repository API) is given a `Clock`, `utc_now` unless a test injects its own."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)
