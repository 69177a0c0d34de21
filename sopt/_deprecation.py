"""Old names kept working for one release after a rename: each use warns
with a :class:`DeprecationWarning` that points at the user's line and names
the new spelling.

Three forms: a module attribute (:func:`renamed_attributes`, the module's
``__getattr__``), a method (:func:`renamed_method`) and a read-only
attribute (:func:`renamed_property`). Internal code uses the new names
only, so a warning always comes from the user's code.
"""
from __future__ import annotations

import sys
import warnings
from typing import Callable


def warn_renamed(old: str, new: str, stacklevel: int = 3) -> None:
    """DeprecationWarning "old is deprecated: use new". ``stacklevel``
    counts from this function: 3 is the caller of the function that calls
    this one."""
    warnings.warn(f"{old} is deprecated and will be removed in the next "
                  f"release: use {new}", DeprecationWarning, stacklevel=stacklevel)


def renamed_attributes(module: str, renamed: dict[str, str]) -> Callable:
    """A module ``__getattr__`` that serves each old name of ``renamed``
    (old -> new) as the module's object under the new name, with a warning
    at the line that read it (``import``, ``from ... import`` or ``mod.old``)."""
    def __getattr__(name: str):
        if name not in renamed:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warn_renamed(f"{module}.{name}", f"{module}.{renamed[name]}")
        return getattr(sys.modules[module], renamed[name])
    return __getattr__


def renamed_method(old: str, new: str) -> Callable:
    """A method ``old`` that warns and calls ``self.new`` with its arguments."""
    def method(self, *args, **kwargs):
        warn_renamed(f"{type(self).__name__}.{old}()", f"{new}()")
        return getattr(self, new)(*args, **kwargs)
    method.__name__ = old
    method.__doc__ = f"Deprecated name of :meth:`{new}`."
    return method


def renamed_property(old: str, new: str) -> property:
    """A read-only attribute ``old`` that warns and returns ``self.new``
    (an AttributeError, without a warning, where ``new`` is not set)."""
    def get(self):
        value = getattr(self, new)
        warn_renamed(f"{type(self).__name__}.{old}", new)
        return value
    return property(get, doc=f"Deprecated name of ``{new}``.")
