"""``bpfsign status``: every loaded BPF program with the kernel's signature verdict."""

from __future__ import annotations

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


def parse_fast(argv: Sequence[str]) -> StatusOptions | None:
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


def register(sub: Any) -> None:
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

    raw, source = status.read_records(opts.pin)
    if opts.json:
        import sys

        sys.stdout.write(json_text(raw, source))
        return _common.EXIT_OK
    rows = status.parse(raw, source)
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


def _json_str(s: str) -> str:
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return f'"{s}"'
    import json

    return json.dumps(s)


#: Name bytes that JSON takes as they are (printable ASCII but the quote and backslash).
_PLAIN = bytes(c for c in range(0x20, 0x7F) if c not in b'"\\')


#: ... and the NUL that pads a name (the kernel's names are letters, digits, '_' and '.')
_PLAIN_OR_NUL = _PLAIN + b"\0"


def json_text(raw: bytes, source: str) -> str:
    """The records as a JSON array, one object per line, keys sorted.

    The values of ``json.dumps(row.as_dict(), sort_keys=True)`` for each parsed row
    (tests/test_status_core.py checks), made straight from the records: no
    :class:`~bpfsign.kernel.status.ProgStatus` objects and no json module. It is a
    share of a run timed against ``bpftool prog show`` (bench/bench_vm_status.py),
    so the common case -- every name plain, every type, verdict and keyring one
    that has a name -- is one comprehension with no call per record but the
    field conversions; anything else takes :func:`_json_rows`. ``loaded_at``
    keeps its three decimals (``1733360000.120``): the number ``round(…, 3)``
    gives, written as ``:.3f`` writes it.
    """
    from ..kernel import status as ST

    ST.check_size(raw, source)
    count = len(raw) // ST.RECORD_SIZE
    magic = ST.MAGIC.to_bytes(2, "little")
    if raw[ST.MAGIC_OFFSET :: ST.RECORD_SIZE] != magic[:1] * count or (
        raw[ST.MAGIC_OFFSET + 1 :: ST.RECORD_SIZE] != magic[1:] * count
    ):
        ST.parse(raw, source)  # raises, naming the first record's wrong format
    boot = ST.boot_offset()
    if b"".join(ST.names_of(raw)).translate(None, _PLAIN_OR_NUL):  # a name to escape
        return _array(_json_rows(raw, boot))
    types, verdicts, keyrings, nul = ST.PROG_TYPES, ST.VERDICT_NAMES, ST.KEYRING_NAMES, b"\0"
    try:  # (the names in these tables need no escaping: tests/test_status_core.py)
        rows = [
            f'{{"id": {pid}, "keyring_serial": {serial}, "keyring_type": "{keyrings[kt]}", '
            f'"load_time_ns": {t}, "loaded_at": {boot + t / 1e9:.3f}, '
            f'"name": "{name.partition(nul)[0].decode()}", "tag": "{tag.hex()}", '
            f'"type": {pt}, "type_name": "{types[pt]}", "verdict": "{verdicts[v]}"}}'
            for pid, pt, tag, t, name, serial, v, kt, _ in ST.RECORD.iter_unpack(raw)
        ]
    except IndexError:  # a type, verdict or keyring value with no name
        rows = _json_rows(raw, boot)
    return _array(rows)


def _array(rows: list[str]) -> str:
    return "[\n" + ",\n".join(rows) + "\n]\n"


def _json_rows(raw: bytes, boot: float) -> list[str]:
    """:func:`json_text`'s rows for any records: names escaped, unnamed values named."""
    from ..kernel import status as ST

    tails: dict[tuple[int, int], str] = {}  # the type and verdict fields close each object
    keyrings: dict[int, str] = {}
    rows = []
    for pid, ptype, tag, load_time, name, serial, verdict, ktype, _ in ST.RECORD.iter_unpack(raw):
        tail = tails.get((ptype, verdict))
        if tail is None:
            tail = tails[ptype, verdict] = (
                f'"type": {ptype}, "type_name": {_json_str(ST.prog_type_name(ptype))}, '
                f'"verdict": {_json_str(ST.enum_name(ST.VERDICT_NAMES, verdict))}}}'
            )
        k = keyrings.get(ktype)
        if k is None:
            k = keyrings[ktype] = _json_str(ST.enum_name(ST.KEYRING_NAMES, ktype))
        raw_name = name.partition(b"\0")[0]
        if raw_name.translate(None, _PLAIN):
            n = _json_str(raw_name.decode(errors="replace"))
        else:
            n = f'"{raw_name.decode()}"'
        rows.append(
            f'{{"id": {pid}, "keyring_serial": {serial}, "keyring_type": {k}, '
            f'"load_time_ns": {load_time}, "loaded_at": {boot + load_time / 1e9:.3f}, '
            f'"name": {n}, "tag": "{tag.hex()}", {tail}'
        )
    return rows
