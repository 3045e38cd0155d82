"""The CrewAI adapter where CrewAI is not installed (the main venv): naming it asks for the extra, and its
usage fallback reads only plausible counts. The adapter itself is tested with the real CrewAI in tests/crewai."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

import tokenmeter
from tokenmeter import Usage
from tokenmeter.integrations import crewai as adapter


@pytest.mark.skipif(importlib.util.find_spec("crewai") is not None, reason="CrewAI is installed here")
def test_instrument_by_name_without_crewai_names_the_extra() -> None:
    with pytest.raises(tokenmeter.ConfigError, match=r"tokenmeter\[crewai\]"):
        tokenmeter.instrument("crewai")
    assert "crewai" not in tokenmeter.instrumented()
    tokenmeter.instrument()  # every installed integration: CrewAI is silently not among them
    try:
        assert "crewai" not in tokenmeter.instrumented()
    finally:
        tokenmeter.uninstrument()


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        (
            {"prompt_tokens": 34, "completion_tokens": 5, "cached_prompt_tokens": 4, "reasoning_tokens": 2},
            Usage(input=30, cache_read=4, output=3, reasoning=2),
        ),
        ({"prompt_tokens": 10, "completion_tokens": 0}, Usage(input=10)),
        ({"prompt_tokens": -1, "completion_tokens": 5}, None),
        ({"prompt_tokens": "10", "completion_tokens": 5}, None),
        ({"prompt_tokens": 10.0, "completion_tokens": 5}, None),
        ({"completion_tokens": 5}, None),
        (None, None),
        ("usage", None),
    ],
)
def test_usage_report_reads_only_plausible_counts(report: Any, expected: Usage | None) -> None:
    assert adapter._usage(report) == expected


def test_long_labels_become_short_one_line_names() -> None:
    assert adapter._short("  Write the\nsum  in words. ") == "Write the sum in words."
    name = adapter._short("word " * 40)
    assert len(name) == 64 and name.endswith("…")
