"""``bpfsign load``: load a light skeleton into the running kernel, or ask the kernel model.

With ``--model PROFILE`` (bpfsign.kernel.profiles) nothing touches the running kernel:
the same loader runs over :class:`~bpfsign.kernel.model.KernelModel` as its backend.
"""

from __future__ import annotations

from . import _common
from ._options import options

TYPE_CHECKING = False  # argparse/typing only for the type checker (CLI start-up is timed)
if TYPE_CHECKING:
    from typing import Any


@options
class LoadOptions:
    skeleton: str
    keyring: str = "session"
    unsigned: bool = False
    attach: bool = False
    pin: str | None = None
    model: str | None = None
    trust: tuple[str, ...] = ()
    json: bool = False


def register(sub: Any) -> None:
    ld = sub.add_parser(
        "load",
        help="load a light skeleton into the running kernel and show what it created",
        description="Load SKEL.lskel.h through bpf() the way skel_internal.h does, print the "
        "maps, programs and links it created, then release them (unless --pin keeps them).",
    )
    ld.add_argument(
        "skeleton", metavar="SKEL.lskel.h", help="light skeleton header, signed or unsigned"
    )
    ld.add_argument(
        "--keyring",
        default="session",
        metavar="K",
        help="keyring_id for a signed load: session (-3, default), 0/1/2 (system keyrings), "
        "a keyring serial, or a keyring NAME below the session keyring",
    )
    ld.add_argument(
        "--unsigned", action="store_true", help="load a signed skeleton without its signature"
    )
    ld.add_argument(
        "--attach", action="store_true", help="attach the programs the skeleton can auto-attach"
    )
    ld.add_argument(
        "--pin", metavar="DIR", help="pin maps, programs (and links) under DIR on a bpf filesystem"
    )
    ld.add_argument(
        "--model",
        choices=("7.3", "6.18", "6.18-nosig", "7.x-bpf-keyring"),
        metavar="PROFILE",
        help="do not touch the running kernel: say what a kernel of this profile (7.3, 6.18, "
        "6.18-nosig, 7.x-bpf-keyring) would answer to this load (bpfsign.kernel.model), with "
        "--trust as its keyrings",
    )
    ld.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="CERT",
        help="with --model: a certificate (file or directory) in the session keyring",
    )
    _common.add_json(ld)
    _common.set_command(ld, LoadOptions, handle)


def _keyring_id(spec: str) -> int:
    if spec == "session":
        return -3
    try:
        return int(spec, 0)
    except ValueError:
        from ..kernel import keyring

        return keyring.resolve_keyring(spec)


def load_lines(
    info: dict[str, Any], name: str, path: str, pinned: list[str], pin_dir: str | None
) -> list[str]:
    """The text report of ``bpfsign load`` (fds are never shown: they close on exit)."""
    from ..kernel.consts import MAP_TYPE_NAMES, PROG_TYPE_NAMES

    if info["signed"]:
        how = f"signed, {info['scheme']} scheme"
    elif info["skeleton_signed"]:
        how = f"unsigned (--unsigned: its signature was not sent), {info['scheme']} scheme"
    else:
        how = "unsigned (no signature in the header)"
    lines = [f"loaded {name} from {path}: {how}"]
    for m in info["maps"]:
        kind = MAP_TYPE_NAMES.get(m["type"], f"type {m['type']}")
        lines.append(
            f"  map  {m['name']:<16} id {m['id']:<6} {kind:<13} "
            f"key {m['key_size']} value {m['value_size']} max_entries {m['max_entries']}"
        )
    for p in info["progs"]:
        if not p.get("loaded", True):
            lines.append(f"  prog {p['name']:<16} not loaded (the object does not autoload it)")
            continue
        kind = PROG_TYPE_NAMES.get(p["type"], f"type {p['type']}")
        lines.append(f"  prog {p['name']:<16} id {p['id']:<6} {kind:<16} tag {p['tag']}")
    for link in info["links"]:
        lines.append(f"  link {link['prog']}")
    if pinned:
        lines.append(f"pinned {len(pinned)} objects under {pin_dir}")
        lines += [f"  {path}" for path in pinned]
    else:
        lines.append("released on exit (use --pin DIR to keep them)")
    return lines


def handle(opts: LoadOptions) -> int:
    from ..kernel import loader
    from ..skel import skeleton

    if opts.model:
        return _load_model(opts, opts.model)
    skel = skeleton.load(opts.skeleton)
    with loader.load(skel, keyring_id=_keyring_id(opts.keyring), unsigned=opts.unsigned) as ls:
        if opts.attach:
            ls.attach()
        info = ls.describe()
        pinned = ls.pin(opts.pin) if opts.pin else []
    # The fds in describe() are closed by now: report kernel ids, and paths when pinned.
    pin_of = {}
    for path in pinned:
        kind, _, name = path.rsplit("/", 1)[-1].partition("_")
        pin_of[(kind, name)] = path
    for kind, key, items in (
        ("map", "name", info["maps"]),
        ("prog", "name", info["progs"]),
        ("link", "prog", info["links"]),
    ):
        for item in items:
            del item["fd"]
            if pinned:
                item["pinned"] = pin_of.get((kind, item[key]))
    info["skeleton_signed"] = skel.signature is not None
    info["scheme"] = info["scheme"] if info["signed"] or skel.signature is not None else None
    info["pinned"] = pinned
    _common.emit(
        opts, info, "\n".join(load_lines(info, skel.name, opts.skeleton, pinned, opts.pin))
    )
    return _common.EXIT_OK


def _load_model(opts: LoadOptions, kernel: str) -> int:
    """The loader, unchanged, over :class:`~bpfsign.kernel.model.KernelModel` as its backend."""
    from .. import errors
    from ..crypto import trust
    from ..kernel import keyspec, loader
    from ..kernel.model import KernelModel, ProgramsNotRun
    from ..skel import skeleton

    store = trust.TrustStore()
    for path in opts.trust:
        store.add_path(path, "session")
    keyring_id = keyspec.keyring_id(opts.keyring)
    skel = skeleton.load(opts.skeleton)
    model = KernelModel(kernel, store)
    ld = loader.Loader(
        skel, keyring_id=keyring_id, unsigned=opts.unsigned, backend=model, check_kernel=False
    )
    mode = f"{'signed' if ld.signed else 'unsigned'}, {ld.scheme} scheme"
    try:
        ld.load().close()  # the model stops at the loader's run (ProgramsNotRun)
    except ProgramsNotRun:
        pass
    except (errors.KernelError, errors.UnsupportedFeature) as exc:
        err = exc.errno if exc.errno is not None else 0
        log = exc.log.strip().splitlines() if isinstance(exc, errors.KernelError) else []
        why = log[-1] if log else (exc.why if isinstance(exc, errors.UnsupportedFeature) else "")
        text = f"the {kernel} kernel would refuse this: {errors.errno_name(err)} ({err})"
        if isinstance(exc, errors.KernelError) and exc.hint:
            mode += f"; {exc.hint}"
        refusal: dict[str, Any] = {
            "kernel": kernel,
            "loads": False,
            "errno": err,
            "errno_name": errors.errno_name(err),
            "log": why,
            "mode": mode,
        }
        _common.emit(
            opts,
            refusal,
            _common.cli_text(text + (f": {why}" if why else "") + f"\n  ({skel.name}: {mode})"),
        )
        return _common.EXIT_REJECTED
    obj: dict[str, Any] = {"kernel": kernel, "loads": True, "errno": None, "log": "", "mode": mode}
    _common.emit(
        opts,
        obj,
        f"the {kernel} kernel would load this: PROG_LOAD of the loader passes "
        f"({skel.name}: {mode}; the model does not run the loader)",
    )
    return _common.EXIT_OK
