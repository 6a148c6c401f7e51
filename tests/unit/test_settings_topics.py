"""`Settings.topics`: the one list of the topics the worker uses (stack up, demo, the tests)."""

from __future__ import annotations

from worker.settings import TOPIC_SETTINGS, Settings


def test_topics_are_the_four_topic_settings_inputs_first() -> None:
    settings = Settings(turn_topic="t", override_topic="o", update_topic="u", dlq_topic="d")

    assert settings.topics == ("t", "o", "u", "d")


def test_every_topic_setting_is_among_the_topics() -> None:
    """A topic setting added later joins `topics`, so `stack up` and `demo` create it too."""
    named_topics = {name for name in Settings.model_fields if name.endswith("_topic")}

    assert set(TOPIC_SETTINGS) == named_topics
