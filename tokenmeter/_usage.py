"""The one usage record: disjoint token classes whose sum is the billed total."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal

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


DETAILS: dict[str, tuple[int, str]] = {
    "cache_write_1h": (2, "text"),
    "input_audio": (0, "audio"),
    "input_image": (0, "image"),
    "input_video": (0, "video"),
    "cache_read_audio": (1, "audio"),
    "cache_read_image": (1, "image"),
    "output_audio": (3, "audio"),
    "output_image": (3, "image"),
}
"""Detail counts a usage may carry: name -> (index of the class it is part of, its modality).

A detail is a part of its class priced at its own rate when the table has one (a 1-hour cache write,
audio input...); the rest of the class is the default (5-minute writes, text tokens).
"""


UNITS: dict[str, int] = {
    "web_search": 1000,
    "web_fetch": 1000,
    "file_search": 1000,
    "code_execution": 1000,
    "cache_storage": 3_600_000_000,
}
"""Per-request units a call may carry beside its tokens: name -> how many units one published price covers.

``web_search`` (Anthropic ``server_tool_use.web_search_requests``, OpenAI Responses ``web_search_call``
items, Gemini grounding with Google Search), ``web_fetch`` (Anthropic ``web_fetch_requests``),
``file_search`` (OpenAI Responses ``file_search_call`` items), ``code_execution``: priced per 1,000.
``cache_storage`` is token-seconds of an explicit context cache (Gemini ``cachedContents``), priced per
1,000,000 token-hours (3.6e9 token-seconds). See :mod:`tokenmeter._unit_rates` for where each rate comes from.
"""


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

    What the response says beyond the five classes (all optional, defaults mean "nothing more"):

    * ``details`` -- ``(name, tokens)`` parts of a class priced at their own rate (see :data:`DETAILS`:
      ``cache_write_1h``, ``input_audio``, ``output_image``...), sorted by name;
    * ``service_tier`` -- the tier that served the call, as the response says (``default``, ``flex``,
      ``priority``, ``scale``); ``processing`` -- ``batch`` for batch results;
    * ``cost_usd`` -- a cost the provider reported for the call (OpenRouter ``usage.cost``);
    * ``parts`` -- ``(model, usage)`` sub-inferences of other models included in the classes (Anthropic
      ``usage.iterations``), priced at their own model's rate;
    * ``model_reported`` -- ``(class, tokens)`` a second source reported differently from the metered
      count (Bedrock streams: the model's own count beside Bedrock's), kept visible, never metered;
    * ``units`` -- ``(unit, count)`` per-request charges beside the tokens (see :data:`UNITS`: web
      searches, cache storage token-seconds...), sorted by name, priced as their own part of the cost.
    """

    input: int = 0
    cache_read: int = 0
    cache_write: int = 0
    output: int = 0
    reasoning: int = 0
    estimated: bool = False
    # Not compared: two usages are equal when their classes and estimate flag are (what callers and
    # tests compare); the extras refine pricing and the span, see ``has_extras``.
    details: tuple[tuple[str, int], ...] = field(default=(), compare=False)
    service_tier: str | None = field(default=None, compare=False)
    processing: str | None = field(default=None, compare=False)
    cost_usd: Decimal | None = field(default=None, compare=False)
    parts: tuple[tuple[str, Usage], ...] = field(default=(), compare=False)
    model_reported: tuple[tuple[str, int], ...] = field(default=(), compare=False)
    units: tuple[tuple[str, int], ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        # One cheap test for the common case (built on every call); the loop only names the culprit.
        i, r, w, o, z = self.input, self.cache_read, self.cache_write, self.output, self.reasoning
        if (type(i) is int and type(r) is int and type(w) is int and type(o) is int and type(z) is int) and (
            i >= 0 and r >= 0 and w >= 0 and o >= 0 and z >= 0
        ):
            if self.details:
                _check_details(self)
            if self.units:
                _check_units(self.units)
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
        if self.has_extras or other.has_extras:
            return _add_extras(self, other)
        return add_classes(self, other)

    @property
    def plausible(self) -> bool:
        """Whether no class exceeds :data:`MAX_TOKENS` (the core refuses to record an implausible usage)."""
        m = MAX_TOKENS
        return (
            self.input <= m
            and self.cache_read <= m
            and self.cache_write <= m
            and self.output <= m
            and (self.reasoning <= m)
        )

    @property
    def has_extras(self) -> bool:
        """Whether anything beyond the five classes and the estimate flag is set."""
        return bool(
            self.details
            or self.parts
            or self.model_reported
            or self.units
            or self.service_tier is not None
            or self.processing is not None
            or self.cost_usd is not None
        )

    def unit(self, name: str) -> int:
        """The count of one per-request unit (0 when not reported)."""
        for key, n in self.units:
            if key == name:
                return n
        return 0

    def detail(self, name: str) -> int:
        """The tokens of one detail (0 when not reported)."""
        for key, n in self.details:
            if key == name:
                return n
        return 0

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


def merge_counts(a: tuple[tuple[str, int], ...], b: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
    """Two ``(name, count)`` tuples summed by name, sorted by name."""
    if not a:
        return b
    if not b:
        return a
    merged = dict(a)
    for name, n in b:
        merged[name] = merged.get(name, 0) + n
    return tuple(sorted(merged.items()))


def _add_extras(a: Usage, b: Usage) -> Usage:
    cost = a.cost_usd if b.cost_usd is None else b.cost_usd if a.cost_usd is None else a.cost_usd + b.cost_usd
    return Usage(
        a.input + b.input,
        a.cache_read + b.cache_read,
        a.cache_write + b.cache_write,
        a.output + b.output,
        a.reasoning + b.reasoning,
        a.estimated or b.estimated,
        merge_counts(a.details, b.details),
        a.service_tier
        if a.service_tier == b.service_tier or b.service_tier is None
        else (b.service_tier if a.service_tier is None else None),
        a.processing
        if a.processing == b.processing or b.processing is None
        else (b.processing if a.processing is None else None),
        cost,
        a.parts + b.parts,
        merge_counts(a.model_reported, b.model_reported),
        merge_counts(a.units, b.units),
    )


def _check_details(usage: Usage) -> None:
    counts = class_counts(usage)
    used = [0, 0, 0, 0, 0]
    for name, n in usage.details:
        known = DETAILS.get(name)
        if known is None:
            raise ValueError(f"Usage.details: unknown detail {name!r}; use one of {sorted(DETAILS)}")
        if type(n) is not int or n < 0:
            raise ValueError(f"Usage.details: {name} must be an int >= 0, got {n!r}")
        used[known[0]] += n
    for i, n in enumerate(used):
        if n > counts[i]:
            raise ValueError(f"Usage.details: the details of {TOKEN_CLASSES[i]} ({n}) exceed the class ({counts[i]})")


def _check_units(units: tuple[tuple[str, int], ...]) -> None:
    for name, n in units:
        if name not in UNITS:
            raise ValueError(f"Usage.units: unknown unit {name!r}; use one of {sorted(UNITS)}")
        if type(n) is not int or n < 0:
            raise ValueError(f"Usage.units: {name} must be an int >= 0, got {n!r}")


def with_units(usage: Usage, **units: int) -> Usage:
    """``usage`` with per-request unit counts added (zero counts dropped)."""
    added = tuple(sorted((k, n) for k, n in units.items() if n and n > 0))
    if not added:
        return usage
    return replace(usage, units=merge_counts(usage.units, added))


def with_details(usage: Usage, **details: int) -> Usage:
    """``usage`` with detail counts added (zero counts dropped), clipped to their class."""
    counts = list(class_counts(usage))
    merged = dict(usage.details)
    for name, n in details.items():
        if not n or n < 0:
            continue
        parent = DETAILS[name][0]
        used = sum(v for k, v in merged.items() if DETAILS[k][0] == parent)
        n = min(n, counts[parent] - used)
        if n > 0:
            merged[name] = merged.get(name, 0) + n
    if not merged:
        return usage
    return replace(usage, details=tuple(sorted(merged.items())))


def add_classes(a: Usage, b: Usage, service_tier: str | None = None) -> Usage:
    """``a + b`` for two usages without extras (the five classes and the estimate flag), served by
    ``service_tier``: one :class:`Usage` built where ``with_service_tier(a + b, tier)`` builds two (per call)."""
    return Usage(
        a.input + b.input,
        a.cache_read + b.cache_read,
        a.cache_write + b.cache_write,
        a.output + b.output,
        a.reasoning + b.reasoning,
        a.estimated or b.estimated,
        service_tier=service_tier,
    )


def with_service_tier(usage: Usage, tier: str | None) -> Usage:
    """``usage`` served by ``tier`` (what ``dataclasses.replace`` does, at a fraction of its cost: per call)."""
    u = usage
    return Usage(
        u.input,
        u.cache_read,
        u.cache_write,
        u.output,
        u.reasoning,
        u.estimated,
        u.details,
        tier,
        u.processing,
        u.cost_usd,
        u.parts,
        u.model_reported,
        u.units,
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


def add_modalities(modal: dict[tuple[int, str], int], usage: Usage) -> None:
    """Add the non-text detail counts of ``usage`` to ``(class index, modality)`` running totals."""
    for name, n in usage.details:
        index, modality = DETAILS[name]
        if modality != "text":
            key = (index, modality)
            modal[key] = modal.get(key, 0) + n
