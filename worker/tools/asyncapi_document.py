"""`make docs`: write docs/asyncapi.yaml, the service's AsyncAPI document, in a stable order.

FastStream keeps a broker's publishers in a WeakSet, so its own generator (`faststream docs
gen`) lists channels in memory-address order, which changes from run to run. Sorting the
named sections makes the file depend on the service only (a test compares it with this output).
"""

from __future__ import annotations

import sys
from io import StringIO
from pathlib import Path
from typing import Any

import yaml

from worker.app import document_app

SORTED_SECTIONS = (
    ("channels",),
    ("operations",),
    ("components", "messages"),
    ("components", "schemas"),
)


def document_yaml() -> str:
    document: dict[str, Any] = document_app().schema.to_specification().to_jsonable()
    for path in SORTED_SECTIONS:
        parent = document
        for name in path[:-1]:
            parent = parent.get(name, {})
        if isinstance(section := parent.get(path[-1]), dict):
            parent[path[-1]] = dict(sorted(section.items()))
    out = StringIO(newline="\n")
    yaml.dump(document, out, sort_keys=False)
    return out.getvalue()


def main(argv: list[str]) -> int:
    target = Path(argv[1]) if len(argv) > 1 else Path("docs/asyncapi.yaml")
    target.write_text(document_yaml())
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
