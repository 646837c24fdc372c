"""``bpfsign probe``, ``bpfsign keyring add|list|remove`` and ``bpfsign load``.

These talk to the running kernel. Library modules are imported inside the
handlers so that CLI start-up stays cheap.
"""

from __future__ import annotations

import argparse
from typing import Any

from . import _common, _model


def register(sub: Any) -> None:
    p = sub.add_parser(
        "probe",
        help="show which BPF signing features this kernel has",
        description="Probe the running kernel: bpf() usable, exclusive maps, map hash, signed "
        "BPF_PROG_LOAD, load-time metadata verification, whether 6.18-style -S loaders can run, "
        "and whether the BPF LSM is active.",
    )
    _common.add_json(p)
    p.set_defaults(handler=_probe)

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
    add.add_argument("cert", metavar="CERT")
    _keyring_arg(add, "keyring to link the key into: session (default), a keyring serial, "
                 "or a NAME (created below the session keyring if missing)")
    add.add_argument("--description", help="key description (default: derived from the cert)")
    _common.add_json(add)
    add.set_defaults(handler=_keyring_add)
    lst = ksub.add_parser("list", help="list the keys linked into a keyring")
    _keyring_arg(lst, "keyring to list: session (default), a serial or a NAME")
    _common.add_json(lst)
    lst.set_defaults(handler=_keyring_list)
    rm = ksub.add_parser("remove", help="unlink a key from a keyring")
    rm.add_argument("serial", type=lambda s: int(s, 0), metavar="SERIAL")
    _keyring_arg(rm, "keyring to unlink it from: session (default), a serial or a NAME")
    _common.add_json(rm)
    rm.set_defaults(handler=_keyring_remove)

    ld = sub.add_parser(
        "load",
        help="load a light skeleton into the running kernel and show what it created",
        description="Load SKEL.lskel.h through bpf() the way skel_internal.h does, print the "
        "maps, programs and links it created, then release them (unless --pin keeps them).",
    )
    ld.add_argument("skeleton", metavar="SKEL.lskel.h")
    ld.add_argument(
        "--keyring", default="session", metavar="K",
        help="keyring_id for a signed load: session (-3, default), 0/1/2 (system keyrings), "
        "a keyring serial, or a keyring NAME below the session keyring",
    )
    ld.add_argument("--unsigned", action="store_true",
                    help="load a signed skeleton without its signature")
    ld.add_argument("--attach", action="store_true",
                    help="attach the programs the skeleton can auto-attach")
    ld.add_argument("--pin", metavar="DIR",
                    help="pin maps, programs (and links) under DIR on a bpf filesystem")
    _model.add_args(ld)  # bpfsign load --model (the kernel model; _model.py)
    _common.add_json(ld)
    ld.set_defaults(handler=_load)


def _keyring_arg(p: argparse.ArgumentParser, text: str) -> None:
    p.add_argument("--keyring", default="session", metavar="K", help=text)


# ------------------------------------------------------------------- probe


def _probe(args: argparse.Namespace) -> int:
    import platform

    from ..kernel import probes

    results = probes.probe_all()
    mark = {True: "yes", False: "no", None: "unknown"}
    lines = [f"kernel {platform.release()}"]
    lines += [f"  {p.name:<22} {mark[p.supported]:<8} {p.detail}" for p in results]
    obj = {
        "kernel": platform.release(),
        "probes": {p.name: p.as_dict() for p in results},
    }
    _common.emit(args, obj, "\n".join(lines))
    return _common.EXIT_OK


# ----------------------------------------------------------------- keyring


def _keyring_add(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..kernel import keyring

    data = Path(args.cert).read_bytes()
    added = keyring.add_certificate(
        data, keyring=args.keyring, description=args.description, path=args.cert
    )
    text = (
        f"key {added.serial} added to keyring {added.keyring}: {added.description}\n"
        f"load with: bpfsign load SKEL --keyring {added.keyring}"
        + ("  (or --keyring session)" if args.keyring == "session" else "")
        + f"\nnote: {keyring.KEYRING_ID_REMINDER}"
    )
    obj = {"ok": True, "key": added.serial, "keyring": added.keyring,
           "description": added.description, "note": keyring.KEYRING_ID_REMINDER}
    _common.emit(args, obj, text)
    return _common.EXIT_OK


def _keyring_list(args: argparse.Namespace) -> int:
    from ..kernel import keyring

    ring = keyring.resolve_keyring(args.keyring)
    keys = keyring.list_keys(ring)
    lines = [f"keyring {ring} ({args.keyring}): {len(keys)} entr{'y' if len(keys) == 1 else 'ies'}"]
    lines += [f"  {k.serial:>10}  {k.type:<11} {k.description}" for k in keys]
    obj = {"keyring": ring, "keys": [vars(k) for k in keys]}
    _common.emit(args, obj, "\n".join(lines))
    return _common.EXIT_OK


def _keyring_remove(args: argparse.Namespace) -> int:
    from ..kernel import keyring

    ring = keyring.remove_key(args.serial, keyring=args.keyring)
    _common.emit(args, {"ok": True, "key": args.serial, "keyring": ring},
                 f"key {args.serial} unlinked from keyring {ring}")
    return _common.EXIT_OK


# -------------------------------------------------------------------- load


def _keyring_id(spec: str) -> int:
    if spec == "session":
        return -3
    try:
        return int(spec, 0)
    except ValueError:
        from ..kernel import keyring

        return keyring.resolve_keyring(spec)


_MAP_TYPES = {1: "hash", 2: "array", 3: "prog_array", 5: "percpu_hash", 6: "percpu_array",
              9: "lru_hash", 27: "ringbuf"}
_PROG_TYPES = {1: "socket_filter", 2: "kprobe", 5: "tracepoint", 17: "raw_tracepoint",
               26: "tracing", 29: "lsm", 31: "syscall"}


def load_lines(info: dict[str, Any], name: str, path: str, pinned: list[str],
               pin_dir: str | None) -> list[str]:
    """The text report of ``bpfsign load`` (fds are never shown: they close on exit)."""
    if info["signed"]:
        how = f"signed, {info['scheme']} scheme"
    elif info["skeleton_signed"]:
        how = f"unsigned (--unsigned: its signature was not sent), {info['scheme']} scheme"
    else:
        how = "unsigned (no signature in the header)"
    lines = [f"loaded {name} from {path}: {how}"]
    for m in info["maps"]:
        kind = _MAP_TYPES.get(m["type"], f"type {m['type']}")
        lines.append(f"  map  {m['name']:<16} id {m['id']:<6} {kind:<13} "
                     f"key {m['key_size']} value {m['value_size']} max_entries {m['max_entries']}")
    for p in info["progs"]:
        kind = _PROG_TYPES.get(p["type"], f"type {p['type']}")
        lines.append(f"  prog {p['name']:<16} id {p['id']:<6} {kind:<16} tag {p['tag']}")
    for link in info["links"]:
        lines.append(f"  link {link['prog']}")
    if pinned:
        lines.append(f"pinned {len(pinned)} objects under {pin_dir}")
        lines += [f"  {path}" for path in pinned]
    else:
        lines.append("released on exit (use --pin DIR to keep them)")
    return lines


def _load(args: argparse.Namespace) -> int:
    from ..kernel import loader
    from ..skel import skeleton

    if args.model:
        return _model.load(args)
    skel = skeleton.load(args.skeleton)
    with loader.load(skel, keyring_id=_keyring_id(args.keyring), unsigned=args.unsigned) as ls:
        if args.attach:
            ls.attach()
        info = ls.describe()
        pinned = ls.pin(args.pin) if args.pin else []
    # The fds in describe() are closed by now: report kernel ids, and paths when pinned.
    pin_of = {}
    for path in pinned:
        kind, _, name = path.rsplit("/", 1)[-1].partition("_")
        pin_of[(kind, name)] = path
    for kind, key, items in (("map", "name", info["maps"]), ("prog", "name", info["progs"]),
                             ("link", "prog", info["links"])):
        for item in items:
            del item["fd"]
            if pinned:
                item["pinned"] = pin_of.get((kind, item[key]))
    info["skeleton_signed"] = skel.signature is not None
    info["scheme"] = info["scheme"] if info["signed"] or skel.signature is not None else None
    info["pinned"] = pinned
    _common.emit(args, info, "\n".join(load_lines(info, skel.name, args.skeleton, pinned, args.pin)))
    return _common.EXIT_OK
