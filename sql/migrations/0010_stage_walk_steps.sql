-- Stage walks (v3; worker/qualify/criteria.py `judge_ai_walk`): one extraction may propose
-- several stage steps, each judged and recorded as its own row of tenant.stage_transitions
-- under the one version that records the walk. `step` is the row's position in the AI's walk
-- (1, 2, ... in the order judged), so a reader tells a walk's steps apart and in order without
-- relying on ids. NULL for a stage a person set (override), one the worker set (an inactivity
-- stall, the resume of a deal it stalled), and for rows written before v3.
ALTER TABLE tenant.stage_transitions ADD COLUMN step smallint;
