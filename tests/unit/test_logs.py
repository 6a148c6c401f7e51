"""Library records (FastStream, aiokafka, uvicorn log through the standard library) come out
as the same JSON lines as the worker's own, tracebacks as text."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROGRAM = """
import logging, structlog
from worker.ops.logs import configure_logging
configure_logging("INFO", "json")
structlog.get_logger("worker").info("own_line", batch=1)
logging.getLogger("worker.broker").info("below WARNING: dropped")
try:
    raise RuntimeError("broken")
except RuntimeError:
    logging.getLogger("worker.broker").exception("handler failed")
"""


def test_library_records_are_json_lines_with_text_tracebacks(repo_root: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM], cwd=repo_root, check=True, capture_output=True
    )
    lines = [json.loads(line) for line in done.stderr.decode().splitlines()]
    assert [line["event"] for line in lines] == ["own_line", "handler failed"]
    library = lines[1]
    assert library["level"] == "error" and library["logger"] == "worker.broker"
    assert "RuntimeError: broken" in library["exception"] and "exc_info" not in library
    assert done.stdout == b"", "logs go to stderr; stdout is the commands' output"
