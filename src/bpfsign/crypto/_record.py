"""``typing.NamedTuple``'s class syntax without importing :mod:`typing`.

The verify path never imports :mod:`typing` (it costs milliseconds of start-up,
which ``bpfsign verify`` is benchmarked on). Value types are written once, as
``class X(NamedTuple)`` with annotated fields; the type checker reads that as
``typing.NamedTuple`` and at run time this module builds the same
:func:`collections.namedtuple` class from the annotations, with the class's
methods and properties on it::

    TYPE_CHECKING = False
    if TYPE_CHECKING:
        from typing import NamedTuple
    else:
        from ._record import NamedTuple
"""

from __future__ import annotations

import collections

# Class-body names that are not fields or members of the tuple class.
_SKIP = frozenset(("__module__", "__qualname__", "__annotations__", "__slots__", "__orig_bases__"))


class _Meta(type):
    def __new__(mcls, name: str, bases: tuple[type, ...], ns: dict[str, object]) -> type:
        if not bases:  # NamedTuple itself
            return super().__new__(mcls, name, bases, ns)
        annotations = ns.get("__annotations__", {})
        assert isinstance(annotations, dict)
        fields = tuple(annotations)
        defaults = [ns[f] for f in fields if f in ns]
        if any(f not in ns for f in fields[len(fields) - len(defaults) :]):
            raise TypeError(f"{name}: a field without a default follows one with a default")
        make = collections.namedtuple  # called by name, which mypy checks only for literals
        cls: type = make(name, fields, defaults=defaults or None, module=str(ns.get("__module__")))
        for key, value in ns.items():
            if key not in _SKIP and key not in fields:
                setattr(cls, key, value)
        cls.__qualname__ = str(ns.get("__qualname__", name))
        return cls


class NamedTuple(metaclass=_Meta):
    """Base to write ``class X(NamedTuple): field: type`` with; see the module docstring."""
