"""The ``bpfsign`` command: a thin argparse layer over the library.

One module per command: ``cli/<command>.py`` defines ``register(subparsers)``,
which adds the command's parser and ties it (``_common.set_command``) to a
frozen options record (``_options.options``) and a handler. Adding a command is
that module plus one entry in :data:`COMMANDS`.

Handlers import the library lazily so that start-up stays fast (``bpfsign
verify`` is benchmarked against ``openssl cms -verify``).
"""

import sys

from . import _common

TYPE_CHECKING = False  # argparse/typing only when a parser is really built
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

#: Every command, in --help order; each is the module ``bpfsign.cli.<command>``.
COMMANDS = (
    "keygen",
    "sign",
    "verify",
    "explain",
    "inspect",
    "probe",
    "keyring",
    "load",
    "enforce",
    "status",
    "audit",
    "demo",
)


def _commands_for(argv: "Sequence[str]") -> tuple[str, ...]:
    """The one command named in ``argv``, or all of them (help, errors).

    A run of one command builds only that command's parser: argparse set-up is a
    measurable share of a short run such as ``bpfsign verify``.
    """
    for token in argv:
        if not token.startswith("-"):
            return (token,) if token in COMMANDS else COMMANDS
        if token in ("-h", "--help", "--version"):
            break
    return COMMANDS


def build_parser(commands: "Sequence[str]" = COMMANDS) -> "argparse.ArgumentParser":
    import argparse
    import importlib

    parser = argparse.ArgumentParser(
        prog="bpfsign",
        description="Sign, verify, inspect and load signed BPF light skeletons.",
    )
    parser.add_argument("--version", action="version", version="bpfsign 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in commands:
        importlib.import_module(f"{__name__}.{command}").register(sub)
    return parser


def main(argv: "Sequence[str] | None" = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "verify":
        # the hot path: a plain `bpfsign verify` skips building argparse, which costs
        # a good share of one `openssl cms -verify` run (anything unusual falls through)
        from . import verify

        fast = verify.parse_fast(argv[1:])
        if fast is not None:
            return _common.run(verify.handle, fast)
    if argv and argv[0] == "status":  # timed against bpftool prog show: same idea
        from . import status

        fast_status = status.parse_fast(argv[1:])
        if fast_status is not None:
            return _common.run(status.handle, fast_status)
    return _common.dispatch(build_parser(_commands_for(argv)).parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
