"""Who spends the worker's CPU: py-spy's collapsed stacks split into ours and the client stack.

`make bench --profile` (`python -m tests.bench.run --profile`) samples the worker with py-spy
(from the dev extras) and prints, per scenario, the worker's CPU per LLM call (its rusage over
the scenario, divided by the calls) split in the proportions of the samples:

- ours: prompt building, redaction, the prompt budget (token counting included), merge, SQL
  (asyncpg and worker/store) and the rest of worker/ (the service, versioning, metrics…);
- client: instructor, LiteLLM, the OpenAI SDK, HTTP (httpx, aiohttp);
- runtime: what neither owns: the event loop, the Kafka client, FastStream, logging.

A stack belongs to the first frame, from the outermost in, that one of these owns. Samples of
threads waiting (the event loop's select, idle pool threads) are left out: py-spy does not
always see that they wait.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

CLIENT = "client"
RUNTIME = "runtime"
OURS = ("prompt", "redaction", "budget", "merge", "SQL", "other ours")
CATEGORIES = (*OURS, CLIENT, RUNTIME)

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*):\d+\)$")
_CLIENT_PACKAGES = ("instructor", "litellm", "openai", "httpx", "httpcore", "aiohttp", "tiktoken")
_OWNED_FILES = {
    "worker/extract/prompt.py": "prompt",
    "worker/extract/redaction.py": "redaction",
    "worker/extract/prompt_budget.py": "budget",
    "worker/qualify/merge.py": "merge",
}
# The LLM adapter's own budget functions (they call LiteLLM's token counter).
_BUDGET_FUNCTIONS = ("plan_chunks", "turn_budget", "count_tokens", "_fixed_prompt_tokens")
_WAITING = (
    ("selectors.py", "select"),
    ("threading.py", "wait"),
    ("concurrent/futures/thread.py", "_worker"),
    ("queue.py", "get"),
)


def owner(file: str, function: str) -> str | None:
    """The category that owns a frame, or None when it is nobody's in particular."""
    path = "/" + file.replace("\\", "/").lstrip("/")  # py-spy's short names are relative
    if any(f"/{package}/" in path for package in _CLIENT_PACKAGES):
        return CLIENT
    if "/asyncpg/" in path or "/worker/store/" in path:
        return "SQL"
    for suffix, category in _OWNED_FILES.items():
        if path.endswith(suffix):
            return category
    if path.endswith("worker/extract/llm.py") and function.endswith(_BUDGET_FUNCTIONS):
        return "budget"
    return None


def category(frames: list[tuple[str, str]]) -> str | None:
    """A stack's category (outermost owner first), None for a waiting thread."""
    for function, file in frames:
        found = owner(file, function)
        if found is not None:
            return found
    leaf_function, leaf_file = frames[-1]
    if any(leaf_file.endswith(f) and leaf_function.endswith(fn) for f, fn in _WAITING):
        return None
    ours = any(
        f"/{file}".rfind("/worker/") >= 0 and not file.endswith("worker/__main__.py")
        for _, file in frames
    )
    return "other ours" if ours else RUNTIME


def parse(lines: Iterable[str]) -> Counter[str]:
    """Samples per category from py-spy's `--format raw` lines (`frame;frame;… count`)."""
    samples: Counter[str] = Counter()
    for line in lines:
        stack, _, count = line.strip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [
            (m["function"], m["file"]) if (m := _FRAME.match(frame)) else (frame, "")
            for frame in stack.split(";")
        ]
        found = category(frames)
        if found is not None:
            samples[found] += int(count)
    return samples


def split_ms(samples: Mapping[str, int], cpu_ms_per_call: float) -> dict[str, float]:
    """`cpu_ms_per_call` shared out in the proportions of the samples."""
    total = sum(samples.values()) or 1
    return {name: cpu_ms_per_call * samples.get(name, 0) / total for name in CATEGORIES}


def read(path: Path, cpu_ms_per_call: float) -> dict[str, float]:
    with path.open() as lines:
        return split_ms(parse(lines), cpu_ms_per_call)


def one_line(name: str, split: Mapping[str, float]) -> str:
    ours = sum(split[c] for c in OURS)
    total = ours + split[CLIENT] + split[RUNTIME]
    parts = ", ".join(f"{c} {split[c]:.2f}" for c in OURS)
    return (
        f"{name}: {total:.2f} worker CPU ms per extraction = ours {ours:.2f} ({parts})"
        f" + client stack {split[CLIENT]:.2f} + runtime {split[RUNTIME]:.2f}"
    )
