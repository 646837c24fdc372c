"""``bpfsign status``: every loaded BPF program with the kernel's signature verdict."""

from . import _common
from ._options import options

TYPE_CHECKING = False  # argparse/typing only for the type checker (CLI start-up is timed)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any


DEFAULT_PIN = "/sys/fs/bpf/bpfsign"


@options
class StatusOptions:
    pin: str = DEFAULT_PIN
    json: bool = False


def parse_fast(argv: "Sequence[str]") -> StatusOptions | None:
    """``status [--json] [--pin DIR]`` without argparse, or None for argparse to handle.

    ``bpfsign status --json`` is benchmarked against ``bpftool prog show --json``;
    building the argparse tree (gettext, shutil) costs more than the listing.
    tests/test_cli_enforce.py checks that both parsers agree.
    """
    as_json, pin = False, DEFAULT_PIN
    args = iter(argv)
    for arg in args:
        if arg == "--json":
            as_json = True
        elif arg == "--pin":
            value = next(args, None)
            if value is None or value.startswith("-"):
                return None
            pin = value
        else:
            return None
    return StatusOptions(pin=pin, json=as_json)


def register(sub: "Any") -> None:
    p = sub.add_parser(
        "status",
        help="list loaded BPF programs with their signature verdict",
        description="List every BPF program loaded on this host: id, type, name, tag, load "
        "time, and the verdict the kernel recorded (VERIFIED or UNSIGNED) with the keyring "
        "type and serial. Read kernel-side by a BPF iterator; uses the one a pinned "
        "`bpfsign enforce` policy left under --pin DIR, else loads its own.",
    )
    p.add_argument(
        "--pin",
        metavar="DIR",
        default=DEFAULT_PIN,
        help="where an enforcing policy is pinned (default /sys/fs/bpf/bpfsign)",
    )
    _common.add_json(p)
    _common.set_command(p, StatusOptions, handle)


def handle(opts: StatusOptions) -> int:
    from ..kernel import status

    if opts.json:
        import sys

        sys.stdout.write(status.json_listing(opts.pin))
        return _common.EXIT_OK
    rows = status.list_programs(opts.pin)
    import time

    head = ("ID", "TYPE", "NAME", "TAG", "LOADED", "VERDICT", "KEYRING", "SERIAL")
    table = [head] + [
        (
            str(r.id),
            r.type_name,
            r.name or "-",
            r.tag,
            time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(r.loaded_at)),
            r.verdict,
            r.keyring_type,
            str(r.keyring_serial) if r.keyring_serial else "-",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    print(
        "\n".join(
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in table
        )
    )
    return _common.EXIT_OK
