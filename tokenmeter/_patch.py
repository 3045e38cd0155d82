"""Reversible ``wrapt`` patches applied through post-import hooks (import order does not matter).

Other instrumentations (opentelemetry-instrumentation-openai-v2, OpenLLMetry...) patch the same SDK
methods with ``wrapt`` and remove their patch by putting back whatever their wrapper wrapped. To let each
side remove only its own layer, in either order, tokenmeter's layer always sits *beneath* any ``wrapt``
wrapper already there (spliced into the chain), and is removed with ``wrapt.unwrap_object`` by its handle,
(``_remove``), which splices it out from wherever it is in the chain, also as the copy bound to ``None``
that a library wrapping after tokenmeter puts there. Sitting innermost also means a GenAI span of the
other instrumentation is current when tokenmeter meters the call (see ``_semconv``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import wrapt

from . import _lifecycle, _safe


def _install(owner: Any, attr: str, wrapper: Callable[..., Any]) -> Any:
    """Wrap ``owner.attr`` with ``wrapper`` beneath any ``wrapt`` layers already there; the new layer."""
    top = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)
    above: Any = None
    current = top
    while isinstance(current, (wrapt.FunctionWrapper, wrapt.BoundFunctionWrapper)):  # innermost foreign layer
        above, current = current, current.__wrapped__
    if above is None:
        return wrapt.wrap_function_wrapper(owner, attr, wrapper)
    layer = wrapt.FunctionWrapper(current, wrapper)
    above.__wrapped__ = layer
    return layer


def _is_layer(obj: Any, handle: Any) -> bool:
    """``obj`` is tokenmeter's layer ``handle``, or the copy bound to ``None`` that a library wrapping the
    attribute after tokenmeter (``getattr`` on the class) put in the chain instead."""
    return obj is handle or (isinstance(obj, wrapt.BoundFunctionWrapper) and obj._self_parent is handle)


def _remove(owner: Any, attr: str, handle: Any) -> None:
    """Splice tokenmeter's layer out of ``owner.attr``'s chain, wherever it is; other layers stay."""
    top: Any = owner.__dict__.get(attr) if isinstance(owner, type) else getattr(owner, attr, None)
    if top is handle:
        wrapt.unwrap_object(owner, attr, handle, missing_ok=True)
        return
    if _is_layer(top, handle):
        setattr(owner, attr, top.__wrapped__)
        return
    above = top
    for _ in range(64):
        if not isinstance(above, wrapt.BaseObjectProxy):
            return  # not there any more (replaced wholesale by another library)
        below = above.__wrapped__
        if _is_layer(below, handle):
            above.__wrapped__ = below.__wrapped__
            return
        above = below


class Patcher:
    """Patches of one integration: ``add`` targets, then ``apply`` / ``restore``.

    ``add("openai.resources.chat.completions", "Completions.create", wrapper)`` patches the attribute
    when that module is (or once it gets) imported; ``restore`` removes tokenmeter's layer only.
    """

    def __init__(self) -> None:
        self._targets: list[tuple[str, str, Callable[..., Any]]] = []
        self._applied: list[tuple[Any, str, Any]] = []  # (owner, attribute, tokenmeter's wrapper layer)
        self._wanted = False
        self._hooked: set[str] = set()
        # Re-entrant: wrapt calls the hook synchronously, inside apply(), for an already-imported module.
        self._lock = _lifecycle.rlock()

    def add(self, module: str, path: str, wrapper: Callable[..., Any]) -> None:
        """Register ``module``'s attribute ``path`` (dotted, e.g. ``Class.method``) for wrapping."""
        self._targets.append((module, path, wrapper))

    def apply(self) -> None:
        """Patch every target now or when its module is imported."""
        with self._lock:
            self._wanted = True
            for module_name in {m for m, _, _ in self._targets}:
                if module_name not in self._hooked:
                    self._hooked.add(module_name)
                    wrapt.register_post_import_hook(self._on_import, module_name)
                elif module_name in sys.modules:  # a hook fires once: re-patch after restore()
                    self._on_import(sys.modules[module_name])

    def restore(self) -> None:
        """Remove tokenmeter's layers only; wrappers other libraries put above or below stay in place."""
        with self._lock:
            self._wanted = False
            for owner, attr, layer in reversed(self._applied):
                try:
                    _remove(owner, attr, layer)
                except Exception:
                    _safe.log_once(f"unpatch:{attr}", f"tokenmeter: cannot remove its patch of {attr}")
            self._applied.clear()

    def _on_import(self, module: ModuleType) -> None:
        with self._lock:
            if not self._wanted:
                return
            for module_name, path, wrapper in self._targets:
                if module_name != module.__name__:
                    continue
                try:
                    parent_path, _, attr = path.rpartition(".")
                    owner: Any = module
                    for part in filter(None, parent_path.split(".")):
                        owner = getattr(owner, part)
                    if any(o is owner and a == attr for o, a, _ in self._applied):
                        continue
                    self._applied.append((owner, attr, _install(owner, attr, wrapper)))
                except Exception:
                    _safe.log_once(f"patch:{module_name}.{path}", f"tokenmeter: cannot patch {module_name}.{path}")
