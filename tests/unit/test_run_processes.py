"""`run --workers N`: the argument and the ports the children would serve, refused in one line
(exit 2) before any process is started."""

from __future__ import annotations

import pytest

from worker.__main__ import build_parser, main
from worker.errors import ConfigurationError
from worker.settings import Settings
from worker.tools.processes import check_ports


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", ""])
def test_workers_must_be_a_whole_number_of_at_least_one(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", "--workers", value])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: python -m worker run: argument --workers")


def test_one_worker_process_is_the_default() -> None:
    assert build_parser().parse_args(["run"]).workers == 1
    assert build_parser().parse_args(["run", "--workers", "4"]).workers == 4


def test_the_children_ports_must_all_be_ports() -> None:
    check_ports(Settings(http_port=65534), workers=2)  # 65534 and 65535
    check_ports(Settings(http_port=0), workers=64)  # no HTTP at all
    with pytest.raises(
        ConfigurationError, match=r"HTTP_PORT 65535 with --workers 2: .*65535\.\.65536"
    ):
        check_ports(Settings(http_port=65535), workers=2)
