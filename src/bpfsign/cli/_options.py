"""Typed command options: each command reads one frozen record, not an argparse Namespace.

A command declares ``@options class XOptions`` whose field names are its parser's
``dest`` names; :func:`from_namespace` builds it once from the parsed arguments,
so handlers read checked attributes instead of ``getattr(args, name, default)``.

To mypy ``@options`` is a frozen, keyword-only dataclass (``dataclass_transform``).
At run time it is built here rather than by :mod:`dataclasses`, whose import
(``inspect``, ``re``, ``enum``: about 30 ms measured here, close to a whole
``openssl cms -verify`` run) would land on ``bpfsign verify``'s start-up path.
"""

TYPE_CHECKING = False  # typing stays out of start-up; mypy reads this as usual
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")
else:

    def dataclass_transform(**_kwargs):
        return lambda decorator: decorator


#: the class attribute listing an options class's fields, in declaration order
FIELDS = "__options_fields__"


@dataclass_transform(frozen_default=True, kw_only_default=True)
def options(cls: "type[T]") -> "type[T]":
    """Give ``cls`` a keyword-only ``__init__``, value equality and a read-only instance."""
    names: tuple[str, ...] = tuple(cls.__annotations__)  # own fields only (3.10+)
    defaults = {name: cls.__dict__[name] for name in names if name in cls.__dict__}
    qualname = cls.__qualname__

    def __init__(self: "Any", **values: "Any") -> None:
        unknown = sorted(set(values).difference(names))
        missing = [n for n in names if n not in values and n not in defaults]
        if unknown or missing:
            raise TypeError(f"{qualname}: unknown fields {unknown}, missing fields {missing}")
        for name in names:
            object.__setattr__(self, name, values[name] if name in values else defaults[name])

    def __setattr__(self: "Any", name: str, value: "Any") -> None:
        raise AttributeError(f"{qualname} is frozen: cannot set {name}")

    def __delattr__(self: "Any", name: str) -> None:
        raise AttributeError(f"{qualname} is frozen: cannot delete {name}")

    def _values(self: "Any") -> "tuple[Any, ...]":
        return tuple(getattr(self, name) for name in names)

    def __eq__(self: "Any", other: object) -> bool:
        return type(other) is type(self) and _values(self) == _values(other)

    def __hash__(self: "Any") -> int:
        return hash(_values(self))

    def __repr__(self: "Any") -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{qualname}({inner})"

    for method in (__init__, __setattr__, __delattr__, __eq__, __hash__, __repr__):
        setattr(cls, method.__name__, method)
    setattr(cls, FIELDS, names)
    return cls


def fields(cls: object) -> tuple[str, ...]:
    """The field names of an ``@options`` class."""
    names: tuple[str, ...] = getattr(cls, FIELDS)
    return names


def from_namespace(cls: "Callable[..., T]", ns: "argparse.Namespace") -> "T":
    """``cls`` from parsed arguments: each field is the ``dest`` of the same name.

    Lists (``nargs``, ``action="append"``) become tuples, so the record is
    immutable all the way down. A field without a ``dest`` is a bug in the
    command's parser and raises AttributeError (tests/test_cli_main.py walks
    every parser for it).
    """
    values = {}
    for name in fields(cls):
        value = getattr(ns, name)
        values[name] = tuple(value) if isinstance(value, list) else value
    return cls(**values)
