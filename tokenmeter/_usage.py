"""The one usage record: disjoint token classes whose sum is the billed total."""

from __future__ import annotations

from dataclasses import dataclass

TOKEN_CLASSES: tuple[str, ...] = ("input", "cache_read", "cache_write", "output", "reasoning")
"""The disjoint token classes, in a fixed order (also the values of ``tokenmeter.token.class``)."""

MAX_TOKENS: int = 2**32
"""The largest token count one call may report for one class (4,294,967,296).

Over 400 times the largest context window offered today, and small enough that a lifetime of calls sums
within the int64 of every exporter and store. A provider count above it (or negative, or not an ``int``:
a float, bool, string, NaN) is implausible: integrations treat it as not reported, so the call is metered
as *estimated*, and no metric, span, ledger or budget store ever sees the value.
"""


def plausible_count(value: object) -> int | None:
    """``value`` when it is a plausible token count (an ``int`` in ``0..MAX_TOKENS``), else ``None``."""
    return value if type(value) is int and 0 <= value <= MAX_TOKENS else None


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one LLM call (or a sum of calls), split into disjoint classes.

    The classes never overlap, so their sum is the billed total:

    * ``input`` -- uncached prompt tokens that were neither read from nor written to a cache;
    * ``cache_read`` -- prompt tokens served from the provider's prompt cache;
    * ``cache_write`` -- prompt tokens written to the provider's prompt cache;
    * ``output`` -- generated tokens that are not reasoning;
    * ``reasoning`` -- generated reasoning ("thinking") tokens.

    ``estimated`` is true when any part was counted locally instead of reported by the provider.
    Usages combine with ``+`` (the result is estimated if either side is).
    """

    input: int = 0
    cache_read: int = 0
    cache_write: int = 0
    output: int = 0
    reasoning: int = 0
    estimated: bool = False

    def __post_init__(self) -> None:
        # One cheap test for the common case (built on every call); the loop only names the culprit.
        i, r, w, o, z = self.input, self.cache_read, self.cache_write, self.output, self.reasoning
        if (
            type(i) is int and type(r) is int and type(w) is int and type(o) is int and type(z) is int
        ) and (i >= 0 and r >= 0 and w >= 0 and o >= 0 and z >= 0):
            return
        for name in TOKEN_CLASSES:
            value = getattr(self, name)
            if type(value) is not int:
                raise TypeError(f"Usage.{name} must be an int, got {value!r}")
            if value < 0:
                raise ValueError(f"Usage.{name} must be >= 0, got {value}")

    def __add__(self, other: object) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            self.input + other.input,
            self.cache_read + other.cache_read,
            self.cache_write + other.cache_write,
            self.output + other.output,
            self.reasoning + other.reasoning,
            self.estimated or other.estimated,
        )

    @property
    def plausible(self) -> bool:
        """Whether no class exceeds :data:`MAX_TOKENS` (the core refuses to record an implausible usage)."""
        m = MAX_TOKENS
        return self.input <= m and self.cache_read <= m and self.cache_write <= m and self.output <= m and (
            self.reasoning <= m
        )

    @property
    def total(self) -> int:
        """All tokens of every class."""
        return self.input + self.cache_read + self.cache_write + self.output + self.reasoning

    @property
    def input_total(self) -> int:
        """Prompt tokens of every kind (``gen_ai.usage.input_tokens``)."""
        return self.input + self.cache_read + self.cache_write

    @property
    def output_total(self) -> int:
        """Generated tokens of every kind (``gen_ai.usage.output_tokens``)."""
        return self.output + self.reasoning

    def by_class(self) -> tuple[tuple[str, int], ...]:
        """``(class, tokens)`` pairs in the order of :data:`TOKEN_CLASSES`."""
        return (
            ("input", self.input),
            ("cache_read", self.cache_read),
            ("cache_write", self.cache_write),
            ("output", self.output),
            ("reasoning", self.reasoning),
        )


def class_counts(usage: Usage) -> tuple[int, int, int, int, int]:
    """The tokens of each class, ordered as :data:`TOKEN_CLASSES`."""
    return (usage.input, usage.cache_read, usage.cache_write, usage.output, usage.reasoning)


def add_counts(counts: list[int], usage: Usage) -> None:
    """Add ``usage`` to per-class running totals ``counts`` (ordered as :data:`TOKEN_CLASSES`)."""
    counts[0] += usage.input
    counts[1] += usage.cache_read
    counts[2] += usage.cache_write
    counts[3] += usage.output
    counts[4] += usage.reasoning


ZERO = Usage()
"""The empty usage."""
