"""Provider integrations, shipped as ``tokenmeter.integrations`` (one module per provider SDK).

Each module only translates its SDK's request / response / stream into tokenmeter's ``Request``,
``Usage`` and ``Result``; the core does spans, metrics, cost and budgets. Every module exposes the same
names: ``PROVIDER``, ``EXTRA``, ``SDK_MODULE``, ``instrument()``, ``uninstrument()`` and pure
``usage_from_*`` functions.
"""
