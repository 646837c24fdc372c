"""Shared CLI plumbing: exit codes, one-line errors, --json output, per-file records."""

import sys

from ..errors import Error, InputError

TYPE_CHECKING = False  # typing and argparse stay out of start-up; mypy reads this as usual
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import Any, Protocol, TypeVar

    class JsonOption(Protocol):
        """What the plumbing needs from any command's options: was --json given."""

        @property
        def json(self) -> bool: ...

    Opts = TypeVar("Opts", bound=JsonOption)

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2

#: The function every light skeleton's loader calls; how sign/verify tell a header from a payload.
SKELETON_MARKER = b"bpf_load_and_run"

#: The Namespace attribute ``set_command`` stores the (options class, handler) pair under.
COMMAND_DEST = "_bpfsign_command"


#: The library gives advice in its own terms; on the command line the same advice has a
#: spelling, shown in parentheses after the phrase that gives it (see :func:`cli_text`).
#: tests/test_cli_main.py checks that each phrase is still said somewhere in the library.
FLAG_HINTS = (
    ("trust the signer's certificate", "--trust CERT"),
    ("or without its signature", "--unsigned"),
    ("convert it to the loadtime scheme", "`bpfsign sign --scheme loadtime`"),
    ("Use the loadtime scheme", "--scheme loadtime"),
    ("in strict mode", "--strict"),
    (
        "give its passphrase",
        "--passphrase-file F, --passphrase-env NAME or $BPFSIGN_KEY_PASSPHRASE, or a terminal "
        "prompt",
    ),
    ("allow insecure key permissions", "--insecure-key-permissions"),
    ("name an environment variable that holds it", "--pin-env NAME"),
    ("give the certificate file", "--cert FILE"),
    ("as key generation in the token does", "`bpfsign keygen --pkcs11`"),
    ("make a P-256 or P-384 key", "`bpfsign keygen --type ec`"),
    ("read the iterator that policy pinned, from its pin directory", "--pin DIR"),
    (
        "adding a certificate to a keyring of that name creates it",
        "`bpfsign keyring add CERT --keyring NAME`",
    ),
)


def cli_text(message: str) -> str:
    """A library message with the command-line spelling of its advice added."""
    for phrase, hint in FLAG_HINTS:
        at = message.find(phrase)
        if at >= 0:
            end = at + len(phrase)
            message = f"{message[:end]} ({hint}){message[end:]}"
    return message


def add_json(parser: "argparse.ArgumentParser") -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def set_command(
    parser: "argparse.ArgumentParser",
    options: "Callable[..., Opts]",
    handler: "Callable[[Opts], int]",
) -> None:
    """Make ``handler`` run with ``options`` built from this (sub)parser's arguments."""
    parser.set_defaults(**{COMMAND_DEST: (options, handler)})


def dispatch(ns: "argparse.Namespace") -> int:
    """Build the parsed command's options once and run its handler."""
    from ._options import from_namespace

    options, handler = getattr(ns, COMMAND_DEST)
    return run(handler, from_namespace(options, ns))


def emit(opts: "JsonOption", obj: "Any", text: str) -> None:
    """Print ``obj`` as JSON under --json, else the human ``text``."""
    if opts.json:
        import json

        json.dump(obj, sys.stdout, indent=2, sort_keys=True, default=str)
        sys.stdout.write("\n")
    elif text:
        print(text)


def run(handler: "Callable[[Opts], int]", opts: "Opts") -> int:
    """Run a handler; turn library errors into one line and an exit code."""
    try:
        return handler(opts)
    except Error as exc:
        _report(opts, exc)
        return exc.exit_code
    except BrokenPipeError:
        # the reader went away (e.g. `bpfsign inspect --json | head`): not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:  # a file we were asked to read or write
        err = InputError(exc.strerror or str(exc), path=exc.filename)
        _report(opts, err)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("bpfsign: interrupted", file=sys.stderr)
        return 130


def _report(opts: "JsonOption", exc: Error) -> None:
    if opts.json:
        obj: dict[str, Any] = {
            "ok": False,
            "error": type(exc).__name__,
            "message": cli_text(str(exc)),
        }
        for attr in ("errno", "path", "line", "command", "log"):
            if getattr(exc, attr, None) is not None:
                obj[attr] = getattr(exc, attr)
        import json

        json.dump(obj, sys.stdout, indent=2, sort_keys=True, default=str)
        sys.stdout.write("\n")
    print(f"bpfsign: {cli_text(str(exc))}", file=sys.stderr)


# -- many FILEs in one run (sign, verify) ----------------------------------------


def is_skeleton(path: str, data: bytes | None = None) -> bool:
    """A light skeleton header by its name, or (given its bytes) by its text.

    One byte search, not :func:`bpfsign.skel.skeleton.sniff`: every plain FILE of a
    ``bpfsign verify`` run passes here, and importing the skel package for it would
    cost start-up (the benchmarked path); a header found here is then parsed by skel.
    """
    if path.endswith(".lskel.h"):
        return True
    if data is None:
        return False
    return b"\0" not in data and SKELETON_MARKER in data


def read_input(path: str, *, what: str = "file", small: bool = False) -> bytes:
    """A regular file's bytes, size-checked before reading (``small``: keys, certs, signatures)."""
    from .._fileio import MAX_HEADER, MAX_SMALL_FILE
    from .._fileio import read_input as read

    return read(path, limit=MAX_SMALL_FILE if small else MAX_HEADER, what=what)


def worst(a: int, b: int) -> int:
    """Combine per-file exit codes: an input error outranks a rejection."""
    return max(a, b)


def error_record(path: str, kind: str, exc: Error) -> "dict[str, Any]":
    """One FILE's failure as a --json record."""
    record: dict[str, Any] = {
        "file": path,
        "kind": kind,
        "ok": False,
        "error": type(exc).__name__,
        "message": cli_text(getattr(exc, "reason", str(exc))),
    }
    if getattr(exc, "line", None) is not None:
        record["line"] = exc.line  # type: ignore[attr-defined]
    code = getattr(exc, "errno", None)
    if code is not None:
        from ..errors import errno_name

        record["errno"] = code
        record["errno_name"] = errno_name(code)
    return record


def finish(opts: "JsonOption", records: "list[dict[str, Any]]", code: int) -> int:
    """Under --json, the whole run is ONE document: the list of per-file records."""
    if opts.json:
        emit(opts, records, "")
    return code
