"""Provider drivers for the shared scenario suite, and their discovery.

Each module in this package defines ``DRIVER``: an object satisfying :class:`Driver` that knows how
to drive ONE real provider SDK against :class:`tokenmeter.testing.fakes.FakeProvider`. The suite
(``tests/integration/test_scenarios.py``) runs every scenario once per discovered driver.

Every driver must send :data:`PROMPT` as the user message and use :data:`API_KEY` as its credential
(the privacy scenario looks for both strings in the telemetry), and with ``tools=True`` offer the
tool :data:`TOOL_NAME` with :data:`TOOL_SCHEMA` (the suite scripts the fake to call it).

Optional members (read with :func:`option`, defaults in :data:`OPTIONAL`):

* ``reasoning_model: str`` -- model used by the reasoning scenario (default: ``model``);
* ``cheaper_model: str`` -- what the downgrade scenario's gate rewrites the model to
  (default: ``model + "-cheap"``, which is unpriced);
* ``reports_response_model: bool`` -- the provider's response names the model, so the span must carry
  ``gen_ai.response.model`` (default True);
* ``stream_usage_injected: bool`` -- the integration asks the provider for stream usage the caller
  did not request (OpenAI's ``include_usage``), so a driver's plain stream is metered exactly
  (default False; informational).

Set ``TOKENMETER_DRIVERS=openai,azure`` (module names) to run the suite for some drivers only.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from typing import Any, Protocol

from tokenmeter import Usage
from tokenmeter.testing.fakes import Reply

API_KEY = "sk-tokenmeter-test-SECRET-4f9c2a7e"
"""The credential every driver gives its client; it must never appear in telemetry."""

PROMPT = "Tell the meter a secret: purple-walrus-7731 is the passphrase."
"""The user message every driver sends; its text must never appear in telemetry."""

TOOL_NAME = "get_weather"
"""The tool a driver offers when ``tools=True``."""

TOOL_ARGS: dict[str, Any] = {"city": "Paris"}
"""The arguments the fake calls :data:`TOOL_NAME` with."""

TOOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "City name"}},
    "required": ["city"],
}
"""JSON schema of the tool's parameters."""

FEATURES = frozenset(
    {
        "cache_read",
        "cache_write",
        "reasoning",
        "tools",
        "stream",
        "stream_without_usage",
        "async",
        "early_break",
        "context_close",
        "sdk_retry",
    }
)
"""Everything a driver may list in ``supports``."""


class Driver(Protocol):
    """How the scenario suite drives one provider SDK (see the module docstring for optional members)."""

    name: str  # integration name for tokenmeter.instrument(name)
    provider: str  # expected gen_ai.provider.name
    model: str  # a model id that genai-prices prices for this provider
    supports: frozenset[str]  # subset of FEATURES

    def client(self, url: str, *, max_retries: int = 0) -> Any: ...  # url = FakeProvider.url

    def aclient(self, url: str, *, max_retries: int = 0) -> Any: ...

    def call(self, client: Any, *, model: str, stream: bool = False, tools: bool = False) -> str:
        """Send PROMPT; return the reply text (a stream is fully consumed)."""
        ...

    async def acall(self, client: Any, *, model: str, stream: bool = False, tools: bool = False) -> str:
        """Async :meth:`call`."""
        ...

    def stream_break(self, client: Any, *, model: str) -> None:
        """Read ONE chunk, break, drop the stream (the test then runs ``gc.collect()``)."""
        ...

    def stream_close(self, client: Any, *, model: str) -> None:
        """Read one chunk, then leave via the SDK's context manager or ``close()``."""
        ...

    def expected(self, reply: Reply) -> Usage:
        """The exact Usage classes this provider reports for a scripted Reply."""
        ...

    rate_limit_error: type[BaseException]  # what the SDK raises on 429
    rate_limit_error_type: str  # the error.type metered for it
    server_error: type[BaseException]  # what the SDK raises on 500


OPTIONAL: dict[str, Any] = {
    "reasoning_model": None,
    "cheaper_model": None,
    "reports_response_model": True,
    "stream_usage_injected": False,
}
"""Defaults of the optional driver members (``None`` = derived from ``model``)."""


def option(driver: Driver, name: str) -> Any:
    """An optional driver member, or its default."""
    value = getattr(driver, name, OPTIONAL[name])
    if value is None and name == "reasoning_model":
        return driver.model
    if value is None and name == "cheaper_model":
        return driver.model + "-cheap"
    return value


def _discover() -> tuple[dict[str, Driver], dict[str, str]]:
    wanted = {n.strip() for n in os.environ.get("TOKENMETER_DRIVERS", "").split(",") if n.strip()}
    found: dict[str, Driver] = {}
    missing: dict[str, str] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_") or (wanted and info.name not in wanted):
            continue
        try:
            module = importlib.import_module(f"{__name__}.{info.name}")
        except ImportError as exc:  # the provider SDK is not installed: its scenarios skip, with the reason
            missing[info.name] = f"cannot import driver {info.name!r}: {exc}"
            continue
        driver = getattr(module, "DRIVER", None)
        if driver is None:
            missing[info.name] = f"driver module {info.name!r} defines no DRIVER"
            continue
        unknown = set(driver.supports) - FEATURES
        if unknown:
            raise ValueError(f"driver {info.name!r} supports unknown features {sorted(unknown)}")
        found[info.name] = driver
    return found, missing


DRIVERS, UNAVAILABLE = _discover()
"""Drivers by module name; modules that could not be imported, with the reason."""

__all__ = [
    "API_KEY",
    "DRIVERS",
    "FEATURES",
    "PROMPT",
    "TOOL_ARGS",
    "TOOL_NAME",
    "TOOL_SCHEMA",
    "UNAVAILABLE",
    "Driver",
    "option",
]
