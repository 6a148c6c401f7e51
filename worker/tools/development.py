"""The development commands (`stack`, `demo`, `eval`) as the command line reaches them.

They live in the top-level `devtools` package, which a development install has and the runtime
image does not: it is imported here, when one of them runs, and nowhere else in `worker`
(pyproject.toml, import-linter: the one exception to "the runtime never imports devtools").
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

from worker.errors import ConfigurationError
from worker.settings import Settings

INSTALL_HINT = "`make install`, or `pip install -e '.[dev]'` in a clone"


@contextlib.contextmanager
def development_install(command: str) -> Iterator[None]:
    """A module the command needs that is not installed (`devtools` itself, or a package only it
    uses, such as the embedded PostgreSQL) is one line naming it, not a traceback."""
    try:
        yield
    except ModuleNotFoundError as error:
        raise ConfigurationError(
            f"`{command}` needs the development install ({INSTALL_HINT}): "
            f"module {error.name!r} is not installed"
        ) from None


async def stack(args: argparse.Namespace, settings: Settings) -> int:
    with development_install("stack"):
        from devtools import commands
    return await commands.stack(args, settings)


async def demo(args: argparse.Namespace, settings: Settings) -> int:
    with development_install("demo"):
        from devtools import commands
    return await commands.demo(args, settings)


async def evaluate(args: argparse.Namespace, settings: Settings) -> int:
    with development_install("eval"):
        from devtools import commands
    return await commands.evaluate(args, settings)
