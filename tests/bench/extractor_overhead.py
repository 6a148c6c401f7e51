"""Benchmark: the extractor's own overhead per call, against the fake LLM server (no latency).

    .venv/bin/python -m tests.bench.extractor_overhead [--calls 400] [--concurrency 1 8 32]

The server runs in its own process, so the CPU time measured here is ours: prompt building,
instructor, LiteLLM, the OpenAI SDK, HTTP and evidence checks. Not a test: numbers vary by
machine; it reports them and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from schemas import BANTSignals, Channel, DealStage, QualificationState, Speaker
from tests.builders import turn_texts
from tests.fakes.llm_server import subprocess_server
from worker.extract.llm import QualificationExtractor
from worker.extract.port import ExtractionResult, Extractor
from worker.extract.prompt import build_messages
from worker.extract.rules import RulesExtractor

LINES = (
    (Speaker.PROSPECT, "Our SDRs are struggling with manual lead routing in spreadsheets."),
    (Speaker.REP, "How much time does that cost the team each week?"),
    (Speaker.PROSPECT, "We lose about 15 hours a week, and we have a budget of $50k for this."),
    (Speaker.PROSPECT, "We need something live by the end of Q3, and it must support SSO."),
)


@dataclass(frozen=True, kw_only=True)
class Measurement:
    name: str
    calls: int
    concurrency: int
    wall_s: float
    cpu_s: float

    def line(self) -> str:
        per_call_ms = self.cpu_s / self.calls * 1000
        return (
            f"{self.name:<12} concurrency {self.concurrency:>3}: "
            f"{self.calls / self.wall_s:8.1f} calls/s, {per_call_ms:7.3f} CPU ms/call"
        )


def known_state() -> QualificationState:
    need = BANTSignals(need_identified=True, need_confidence=0.6, need_evidence=["We need SSO."])
    return QualificationState(bant=need, key_insights=["Inbound volume doubled"])


async def measure(
    name: str, call: Callable[[], Awaitable[object]], calls: int, concurrency: int
) -> Measurement:
    """Run `calls` calls, at most `concurrency` at a time; wall and process CPU time."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await call()

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one() for _ in range(calls)))
    wall_s, cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    return Measurement(name=name, calls=calls, concurrency=concurrency, wall_s=wall_s, cpu_s=cpu_s)


def extraction_call(extractor: Extractor) -> Callable[[], Awaitable[ExtractionResult]]:
    batch, state = turn_texts(LINES, channel=Channel.EMAIL), known_state()

    async def call() -> ExtractionResult:
        result = await extractor.extract_signals(batch, state, DealStage.DISCOVERY)
        if result.status != "ok":
            raise RuntimeError(f"extraction failed: {result.error}")
        return result

    return call


async def prompt_only() -> None:
    build_messages(turn_texts(LINES, channel=Channel.EMAIL), known_state(), DealStage.DISCOVERY)


async def run(calls: int, concurrency_levels: list[int]) -> list[Measurement]:
    results: list[Measurement] = []
    with subprocess_server(latency_ms=0, reply="echo") as base_url:
        llm = QualificationExtractor(model_name="openai/bench", api_base=base_url, api_key="x")
        llm_call = extraction_call(llm)
        await measure("warm-up", llm_call, 30, 4)
        for concurrency in concurrency_levels:
            results.append(await measure("llm+fake", llm_call, calls, concurrency))
    results.append(await measure("rules", extraction_call(RulesExtractor()), calls, 1))
    results.append(await measure("prompt only", prompt_only, calls, 1))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()
    for measurement in asyncio.run(run(args.calls, args.concurrency)):
        print(measurement.line())


if __name__ == "__main__":
    main()
