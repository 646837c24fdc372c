"""``bpfsign keyring add|list|remove``: signer certificates in the kernel's keyrings."""

from __future__ import annotations

from . import _common
from ._options import options

TYPE_CHECKING = False  # argparse/typing only for the type checker (CLI start-up is timed)
if TYPE_CHECKING:
    import argparse
    from typing import Any


@options
class KeyringAddOptions:
    cert: str
    keyring: str = "session"
    description: str | None = None
    json: bool = False


@options
class KeyringListOptions:
    keyring: str = "session"
    json: bool = False


@options
class KeyringRemoveOptions:
    serial: int
    keyring: str = "session"
    json: bool = False


def register(sub: Any) -> None:
    k = sub.add_parser(
        "keyring",
        help="add, list or remove signer certificates in kernel keyrings",
        description="Manage the keyrings a signed load verifies against. keyring_id must be a "
        "KEYRING (0/1/2, -3 for the session keyring, or a keyring serial), never the serial "
        "of the key itself.",
    )
    ksub = k.add_subparsers(dest="keyring_command", metavar="ACTION")
    ksub.required = True
    add = ksub.add_parser("add", help="add a certificate (PEM or DER) as an asymmetric key")
    add.add_argument("cert", metavar="CERT", help="signer certificate file, PEM or DER")
    _keyring_arg(
        add,
        "keyring to link the key into: session (default), a keyring serial, "
        "or a NAME (created below the session keyring if missing)",
    )
    add.add_argument("--description", help="key description (default: derived from the cert)")
    _common.add_json(add)
    _common.set_command(add, KeyringAddOptions, handle_add)
    lst = ksub.add_parser("list", help="list the keys linked into a keyring")
    _keyring_arg(lst, "keyring to list: session (default), a serial or a NAME")
    _common.add_json(lst)
    _common.set_command(lst, KeyringListOptions, handle_list)
    rm = ksub.add_parser("remove", help="unlink a key from a keyring")
    rm.add_argument(
        "serial",
        type=lambda s: int(s, 0),
        metavar="SERIAL",
        help="serial of the key to unlink, as `bpfsign keyring list` shows it (or 0x hex)",
    )
    _keyring_arg(rm, "keyring to unlink it from: session (default), a serial or a NAME")
    _common.add_json(rm)
    _common.set_command(rm, KeyringRemoveOptions, handle_remove)


def _keyring_arg(p: argparse.ArgumentParser, text: str) -> None:
    p.add_argument("--keyring", default="session", metavar="K", help=text)


def handle_add(opts: KeyringAddOptions) -> int:
    from ..kernel import keyring

    data = _common.read_input(opts.cert, what="certificate", small=True)
    added = keyring.add_certificate(
        data, keyring=opts.keyring, description=opts.description, path=opts.cert
    )
    text = (
        f"key {added.serial} added to keyring {added.keyring}: {added.description}\n"
        f"load with: bpfsign load SKEL --keyring {added.keyring}"
        + ("  (or --keyring session)" if opts.keyring == "session" else "")
        + f"\nnote: {keyring.KEYRING_ID_REMINDER}"
    )
    obj = {
        "ok": True,
        "key": added.serial,
        "keyring": added.keyring,
        "description": added.description,
        "note": keyring.KEYRING_ID_REMINDER,
    }
    _common.emit(opts, obj, text)
    return _common.EXIT_OK


def handle_list(opts: KeyringListOptions) -> int:
    from ..kernel import keyring

    ring = keyring.resolve_keyring(opts.keyring)
    keys = keyring.list_keys(ring)
    lines = [f"keyring {ring} ({opts.keyring}): {len(keys)} entr{'y' if len(keys) == 1 else 'ies'}"]
    lines += [f"  {k.serial:>10}  {k.type:<11} {k.description}" for k in keys]
    obj = {"keyring": ring, "keys": [vars(k) for k in keys]}
    _common.emit(opts, obj, "\n".join(lines))
    return _common.EXIT_OK


def handle_remove(opts: KeyringRemoveOptions) -> int:
    from ..kernel import keyring

    ring = keyring.remove_key(opts.serial, keyring=opts.keyring)
    _common.emit(
        opts,
        {"ok": True, "key": opts.serial, "keyring": ring},
        f"key {opts.serial} unlinked from keyring {ring}",
    )
    return _common.EXIT_OK
