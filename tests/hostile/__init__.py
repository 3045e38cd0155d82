"""Hostile provider answers: the caller sees the same with and without tokenmeter."""

TALLY = {"cases": 0, "differences": 0, "swallowed": 0, "known": 0, "examples": 0}
"""Counts of this run, printed in pytest's terminal summary (see conftest)."""
