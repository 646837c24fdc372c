"""The ``bpfsign`` command: a thin argparse layer over the library.

Each ``_cli/_<area>.py`` module defines ``register(subparsers)``; handlers
import the library lazily so that start-up stays fast (``bpfsign verify`` is
benchmarked against ``openssl cms -verify``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import _common

# Areas, in the order their commands appear in --help.
_AREAS = ("_crypto", "_skel", "_kernel", "_demo")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="bpfsign",
        description="Sign, verify, inspect and load signed BPF light skeletons.",
    )
    parser.add_argument("--version", action="version", version="bpfsign 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for area in _AREAS:
        try:
            mod = importlib.import_module(f"{__name__}.{area}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{area}":
                continue  # area not built yet
            raise
        mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return _common.run(args.handler, args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
