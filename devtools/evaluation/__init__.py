"""`python -m worker eval`: score extraction against a labelled dataset (CONTRACT.md section 8).

`dataset` reads the labelled conversations, `scoring` compares a final state with its labels
(pure), `harness` runs each conversation through the worker's own unit of work on a real
PostgreSQL, `report` prints the table and writes results.json, report.md and f1.png.
"""
