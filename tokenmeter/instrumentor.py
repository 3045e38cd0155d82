"""Entry point for ``opentelemetry-instrument``: configures tokenmeter from the environment and patches SDKs.

Registered as ``opentelemetry_instrumentor = tokenmeter``, so ``opentelemetry-instrument python app.py``
meters every installed provider SDK into the providers the auto-instrumentation installed.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

try:
    from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined,unused-ignore]
        BaseInstrumentor,
    )
except ImportError:  # opentelemetry-instrumentation is optional
    BaseInstrumentor = object


class TokenmeterInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """``instrument()`` = ``configure()`` (TOKENMETER_*/OTEL_* variables) + ``tokenmeter.instrument()``."""

    def instrumentation_dependencies(self) -> Collection[str]:
        """No single SDK is required: each integration is skipped when its SDK is missing."""
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        import tokenmeter

        options = {k: v for k, v in kwargs.items() if k in ("tracer_provider", "meter_provider")}
        tokenmeter.configure(**options)
        tokenmeter.instrument()

    def _uninstrument(self, **kwargs: Any) -> None:
        import tokenmeter

        tokenmeter.uninstrument()
        tokenmeter.unconfigure()

    if BaseInstrumentor is object:

        def instrument(self, **kwargs: Any) -> None:
            """Configure and instrument (used when opentelemetry-instrumentation is not installed)."""
            self._instrument(**kwargs)

        def uninstrument(self, **kwargs: Any) -> None:
            """Undo :meth:`instrument`."""
            self._uninstrument(**kwargs)
