"""Values derived from frozen schema objects, kept by object identity for as long as each object lives.

An incremental capture hands unchanged objects on from the snapshot it started from, so what was
derived from them once (a canonical text, a stream line) is derived again only for what changed.
Identity, not equality: comparing two tables costs about what deriving their text does.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class IdentityMemo(Generic[T]):
    """``value(item, context, derive)``: ``derive()`` once per live object and context."""

    def __init__(self) -> None:
        self._values: dict[int, tuple[weakref.ref[Any], object, T]] = {}

    def value(self, item: object, context: object, derive: Callable[[], T]) -> T:
        key = id(item)
        found = self._values.get(key)
        if found is not None and found[0]() is item and found[1] == context:
            return found[2]
        value = derive()
        self.keep(item, context, value)
        return value

    def keep(self, item: object, context: object, value: T) -> None:
        """Remember ``value`` as what ``item`` gives in ``context`` (known without deriving it)."""
        key = id(item)
        self._values[key] = (weakref.ref(item, functools.partial(self._forget, key)), context, value)

    def _forget(self, key: int, ref: weakref.ref[Any]) -> None:
        found = self._values.get(key)
        if found is not None and found[0] is ref:
            del self._values[key]
