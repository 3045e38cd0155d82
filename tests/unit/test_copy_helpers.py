"""The hand-written copies on the hot path (``with_service_tier``, ``Scope.derive``) carry every field.

They replace ``dataclasses.replace`` for speed; a field added to ``Usage`` or ``Scope`` and forgotten in the
copy would silently be dropped (a per-request unit lost when the served tier is set, for one).
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from tokenmeter import Usage
from tokenmeter._context import Run, Scope
from tokenmeter._usage import with_service_tier


def test_with_service_tier_keeps_every_other_field() -> None:
    full = Usage(
        input=5,
        cache_read=4,
        cache_write=3,
        output=2,
        reasoning=1,
        estimated=True,
        details=(("input_audio", 1),),
        service_tier="default",
        processing="batch",
        cost_usd=Decimal("0.5"),
        parts=(("advisor", Usage(input=1)),),
        model_reported=(("output", 9),),
        units=(("web_search", 2),),
    )
    for f in dataclasses.fields(Usage):
        assert getattr(full, f.name) != f.default, f"set {f.name} to a non-default value in this test"
    copy = with_service_tier(full, "flex")
    assert copy.service_tier == "flex"
    for f in dataclasses.fields(Usage):
        if f.name != "service_tier":
            assert getattr(copy, f.name) == getattr(full, f.name), f.name


def test_scope_derive_keeps_every_field_it_is_not_told_to_change() -> None:
    values = {
        f.name: (3 if f.type in ("int",) else (("k", "v"),) if f.name == "extra" else f"v-{f.name}")
        for f in dataclasses.fields(Scope)
    }
    values["run"] = Run.__new__(Run)
    values["node"] = object()
    scope = Scope(**values)
    for f in dataclasses.fields(Scope):
        assert getattr(scope.derive(), f.name) is getattr(scope, f.name), f.name
        changed = scope.derive(**{f.name: None})
        assert getattr(changed, f.name) is None, f.name
