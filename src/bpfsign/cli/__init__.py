"""The ``bpfsign`` command: a thin argparse layer over the library.

Each ``_cli/_<area>.py`` module defines ``register(subparsers)``; handlers
import the library lazily so that start-up stays fast (``bpfsign verify`` is
benchmarked against ``openssl cms -verify``).
"""

from __future__ import annotations

import sys

from . import _common

TYPE_CHECKING = False  # argparse/typing only when a parser is really built
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

# Areas, in the order their commands appear in --help.
_AREAS = ("_crypto", "_skel", "_kernel", "_demo")
# Which area defines each command: a run of one command builds only that
# area's parsers (argparse set-up is a measurable share of `bpfsign verify`).
_COMMAND_AREA = {
    "keygen": "_crypto",
    "sign": "_crypto",
    "verify": "_crypto",
    "inspect": "_skel",
    "probe": "_kernel",
    "keyring": "_kernel",
    "load": "_kernel",
    "demo": "_demo",
}


def _areas_for(argv: Sequence[str]) -> tuple[str, ...]:
    """The one area that defines the command in ``argv``, or all of them (help, errors)."""
    for token in argv:
        if not token.startswith("-"):
            area = _COMMAND_AREA.get(token)
            return (area,) if area is not None else _AREAS
        if token in ("-h", "--help", "--version"):
            break
    return _AREAS


def build_parser(areas: Sequence[str] = _AREAS) -> argparse.ArgumentParser:
    import argparse
    import importlib

    parser = argparse.ArgumentParser(
        prog="bpfsign",
        description="Sign, verify, inspect and load signed BPF light skeletons.",
    )
    parser.add_argument("--version", action="version", version="bpfsign 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for area in areas:
        try:
            mod = importlib.import_module(f"{__name__}.{area}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{area}":
                continue  # area not built yet
            raise
        mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "verify":
        # the hot path: a plain `bpfsign verify` skips building argparse, which costs
        # a good share of one `openssl cms -verify` run (anything unusual falls through)
        from ._crypto import parse_verify_fast

        fast = parse_verify_fast(argv[1:])
        if fast is not None:
            return _common.run(fast.handler, fast)
    parser = build_parser(_areas_for(argv))
    args = parser.parse_args(argv)
    return _common.run(args.handler, args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
