"""Reversible ``wrapt`` patches applied through post-import hooks (import order does not matter)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import wrapt

from . import _lifecycle, _safe


class Patcher:
    """Patches of one integration: ``add`` targets, then ``apply`` / ``restore``.

    ``add("openai.resources.chat.completions", "Completions.create", wrapper)`` patches the attribute
    when that module is (or once it gets) imported; ``restore`` puts every original back.
    """

    def __init__(self) -> None:
        self._targets: list[tuple[str, str, Callable[..., Any]]] = []
        self._applied: list[tuple[Any, str, Any]] = []
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
        """Put every original back; later imports are no longer patched."""
        with self._lock:
            self._wanted = False
            for owner, attr, original in reversed(self._applied):
                setattr(owner, attr, original)
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
                    original = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)
                    if any(o is owner and a == attr for o, a, _ in self._applied):
                        continue
                    wrapt.wrap_function_wrapper(owner, attr, wrapper)
                    self._applied.append((owner, attr, original))
                except Exception:
                    _safe.log_once(f"patch:{module_name}.{path}", f"tokenmeter: cannot patch {module_name}.{path}")
