"""Development tooling, apart from the runtime: the embedded stack (`stack/`), the evaluation
harness (`evaluation/`) and the demo, run as `python -m worker stack|eval|demo`.

A development install (`make install`: the `dev` extra) has it; the runtime image does not (the
Dockerfile copies `worker/`, `schemas/` and `sql/` only). It may import `worker`; `worker` imports
it in one place only, `worker/tools/development.py`, when one of these commands runs.
"""
