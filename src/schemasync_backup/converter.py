"""The one converter: how reports (and the backup metadata) become plain data ready for JSON.

Configured once: enums give their value, tuples, lists and sets become lists, dicts keep their
keys and convert their values, datetimes give ISO strings, and attrs classes give their fields in
order. A report that shows more than its fields (counts, verdicts such as ``healthy``) or fewer
says so where it is defined, with :func:`report`::

    @report("status", "healthy", ..., checks_run=lambda r: len(r.checks))
    @attrs.frozen
    class HealthReport: ...

and its ``to_dict()`` is ``unstructure(self)``. This module imports nothing of the package, so
every layer can use it (the bottom of the layers, beside ``errors``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from datetime import date, datetime, time
from types import EllipsisType
from typing import Any, TypeVar

import attrs
import cattrs

__all__ = ["converter", "report", "strict_converter", "unstructure"]

T = TypeVar("T")

converter = cattrs.Converter()


def unstructure(value: Any) -> Any:
    """``value`` as plain data (dicts, lists, str, numbers, bool, None), by its run-time type."""
    return converter.unstructure(value)


def strict_converter() -> cattrs.Converter:
    """A converter for reading our documents back: an unknown key is refused, and so is a value of
    another JSON type, where cattrs would coerce ("no" into True for a bool, 5 into "5" for a str)."""
    reader = cattrs.Converter(forbid_extra_keys=True)
    for kind in (str, int, bool):
        reader.register_structure_hook(kind, _exactly(kind))
    return reader


def _exactly(kind: type[Any]) -> Callable[[object, object], Any]:
    def structure(value: object, _: object) -> Any:
        if type(value) is not kind:
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__} {value!r:.40}")
        return value

    return structure


def _attrs_fields(obj: Any) -> dict[str, Any]:
    return {field.name: unstructure(getattr(obj, field.name)) for field in attrs.fields(type(obj))}


# Enums give their value. Registered by class, for the str and int flavours too: a StrEnum is a
# str, and cattrs passes a str through by class.
for _kind in (enum.Enum, enum.StrEnum, enum.IntEnum):
    converter.register_unstructure_hook(_kind, lambda member: unstructure(member.value))
converter.register_unstructure_hook_func(
    lambda cls: isinstance(cls, type) and issubclass(cls, tuple | list | set | frozenset) and not attrs.has(cls),
    lambda items: [unstructure(item) for item in items])
converter.register_unstructure_hook_func(
    lambda cls: isinstance(cls, type) and issubclass(cls, dict),
    lambda mapping: {unstructure(key): unstructure(value) for key, value in mapping.items()})
converter.register_unstructure_hook_func(lambda cls: isinstance(cls, type) and issubclass(cls, datetime | date | time),
                                         lambda moment: moment.isoformat())
# Every attrs class by its run-time field values, like attrs.asdict (no annotations to resolve).
converter.register_unstructure_hook_func(attrs.has, _attrs_fields)


def report(*keys: str | EllipsisType, omit: Iterable[str] = (),
           **computed: Callable[[Any], Any]) -> Callable[[type[T]], type[T]]:
    """Register how the attrs class it decorates (outermost, above ``@attrs.frozen``) unstructures.

    ``keys`` are the output's keys in order: fields, properties, or names of ``computed``
    (functions of the object; a computed name that is a field gives that field's value).
    ``...`` stands for the fields not named in ``keys``, in their order. Without ``keys``: every
    field, then the computed names that are not fields. ``omit`` leaves fields out of ``...``.
    """
    dropped = frozenset(omit)

    def register(cls: type[T]) -> type[T]:
        fields = [field.name for field in attrs.fields(cls)]  # type: ignore[arg-type]
        names = keys or (..., *(name for name in computed if name not in fields))
        named = {key for key in names if isinstance(key, str)}
        rest = [name for name in fields if name not in named and name not in dropped]
        order = [name for key in names for name in (rest if key is ... else [key])]
        getters = [(name, computed.get(name) or _attribute(name)) for name in order]

        def hook(obj: Any) -> dict[str, Any]:
            return {name: unstructure(get(obj)) for name, get in getters}

        # By predicate, not by class: registering by class would resolve the annotations, and
        # the hook reads values, not annotations (a class may name itself, or TYPE_CHECKING names).
        converter.register_unstructure_hook_func(lambda candidate: candidate is cls, hook)
        return cls

    return register


def _attribute(name: str) -> Callable[[Any], Any]:
    return lambda obj: getattr(obj, name)

