"""``Patcher`` next to other ``wrapt`` patches of the same method: each side removes only its own layer, in
either order (issue 13, defect 4). The third-party libraries themselves are exercised in
tests/frameworks/test_coexistence.py; here a plain ``wrapt.wrap_function_wrapper`` stands for them, removed the
way ``opentelemetry.instrumentation.utils.unwrap`` does (put back whatever the outermost wrapper wraps).
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import wrapt

from tokenmeter._patch import Patcher

MODULE = "tokenmeter_test_patch_target"


@pytest.fixture
def target() -> Iterator[type]:
    module = types.ModuleType(MODULE)

    class Resource:
        def create(self, x: int) -> list[str]:
            return [f"sdk:{x}"]

    module.Resource = Resource  # type: ignore[attr-defined]
    sys.modules[MODULE] = module
    yield Resource
    del sys.modules[MODULE]


def _layer(tag: str) -> Callable[..., Any]:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return [tag, *wrapped(*args, **kwargs)]

    return wrapper


def _foreign_unwrap(cls: type) -> None:
    """What other instrumentations do on uninstrument: restore what the outermost wrapper wraps."""
    func = cls.create
    if isinstance(func, wrapt.BaseObjectProxy):
        cls.create = func.__wrapped__


@pytest.mark.parametrize("removed_first", ["tokenmeter", "other"])
@pytest.mark.parametrize("tokenmeter_first", [True, False])
def test_each_side_removes_only_its_own_layer(target: type, tokenmeter_first: bool, removed_first: str) -> None:
    patcher = Patcher()
    patcher.add(MODULE, "Resource.create", _layer("tokenmeter"))
    if tokenmeter_first:
        patcher.apply()
        wrapt.wrap_function_wrapper(target, "create", _layer("other"))  # wraps the class attribute's binding
    else:
        wrapt.wrap_function_wrapper(target, "create", _layer("other"))
        patcher.apply()
    # tokenmeter's layer is innermost whatever the order: the other instrumentation's span encloses its call
    assert target().create(1) == ["other", "tokenmeter", "sdk:1"]
    if removed_first == "tokenmeter":
        patcher.restore()
        assert target().create(2) == ["other", "sdk:2"]
        _foreign_unwrap(target)
    else:
        _foreign_unwrap(target)
        assert target().create(2) == ["tokenmeter", "sdk:2"]
        patcher.restore()
    assert target().create(3) == ["sdk:3"]
    assert not isinstance(target.__dict__["create"], wrapt.BaseObjectProxy)
    patcher.apply()  # and it can be applied again
    assert target().create(4) == ["tokenmeter", "sdk:4"]
    patcher.restore()
    assert target().create(5) == ["sdk:5"]
