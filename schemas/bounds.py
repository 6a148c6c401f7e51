"""How far the lists of a qualification may grow (CONTRACT.md section 2, v3; docs/decisions.md,
Bounds).

Every update event carries the whole state, so a list that grows with the conversation would
one day make an event larger than the producer's request limit (`KAFKA_MAX_REQUEST_BYTES`, at
least 1 MiB), and the event could never be published. The merge keeps the newest items of
each list within these bounds (the full history stays in the turns and `stage_transitions`),
and overrides are refused beyond theirs, so a state and its event fit by construction: the
largest event the bounds allow is measured in tests/unit/test_bounds.py.

An item's size is counted as the bytes of its JSON string, quotes and escapes included (what
is published): plain text takes one byte a character, a control character six.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class ListBound:
    items: int  # the newest this many are kept
    item_bytes: int  # each item is cut to the longest start of it whose JSON takes this many


# Each dimension's evidence: 20 verbatim quotes, each at most ~500 characters.
EVIDENCE = ListBound(items=20, item_bytes=500)
KEY_INSIGHTS = ListBound(items=50, item_bytes=500)
RECOMMENDED_QUESTIONS = ListBound(items=10, item_bytes=500)
# List value fields (decision_criteria): room for every item an override may give, escaped.
LIST_VALUES = ListBound(items=30, item_bytes=1_200)

# What an override may give for a list value field: the state keeps as many.
OVERRIDE_LIST_ITEMS = LIST_VALUES.items
OVERRIDE_LIST_ITEM_CHARS = 200
