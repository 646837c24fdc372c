"""Shared CLI plumbing: exit codes, one-line errors, --json output."""

from __future__ import annotations

import sys

from ..errors import Error, InputError

TYPE_CHECKING = False  # typing and argparse stay out of start-up; mypy reads this as usual
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import Any

    Handler = Callable[[argparse.Namespace], int]

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def emit(args: argparse.Namespace, obj: Any, text: str) -> None:
    """Print ``obj`` as JSON under --json, else the human ``text``."""
    if getattr(args, "json", False):
        import json

        json.dump(obj, sys.stdout, indent=2, sort_keys=True, default=str)
        sys.stdout.write("\n")
    elif text:
        print(text)


def run(handler: Handler, args: argparse.Namespace) -> int:
    """Run a handler; turn library errors into one line and an exit code."""
    try:
        return handler(args)
    except Error as exc:
        _report(args, exc)
        return exc.exit_code
    except BrokenPipeError:
        # the reader went away (e.g. `bpfsign inspect --json | head`): not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:  # a file we were asked to read or write
        err = InputError(exc.strerror or str(exc), path=exc.filename)
        _report(args, err)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("bpfsign: interrupted", file=sys.stderr)
        return 130


def _report(args: argparse.Namespace, exc: Error) -> None:
    if getattr(args, "json", False):
        obj: dict[str, Any] = {"ok": False, "error": type(exc).__name__, "message": str(exc)}
        for attr in ("errno", "path", "line", "command", "log"):
            if getattr(exc, attr, None) is not None:
                obj[attr] = getattr(exc, attr)
        import json

        json.dump(obj, sys.stdout, indent=2, sort_keys=True, default=str)
        sys.stdout.write("\n")
    print(f"bpfsign: {exc}", file=sys.stderr)
