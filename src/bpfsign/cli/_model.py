"""``bpfsign load --model 7.3|6.18``: the kernel's verdict on a load, from the kernel model.

Not an area of its own: ``_kernel`` adds these options to ``bpfsign load`` and
hands over when ``--model`` is given. Nothing here touches the running kernel.
"""

from __future__ import annotations

import argparse

from . import _common


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=("7.3", "6.18"),
                   help="do not touch the running kernel: say what a 7.3 or 6.18 kernel would "
                   "answer to this load (bpfsign.kernel.model), with --trust as its keyrings")
    p.add_argument("--trust", action="append", default=[], metavar="CERT",
                   help="with --model: a certificate (file or directory) in the session keyring")


def load(args: argparse.Namespace) -> int:
    """The loader, unchanged, over :class:`~bpfsign.kernel.model.KernelModel` as its backend."""
    from .. import errors
    from ..crypto import trust
    from ..kernel import loader
    from ..kernel.model import KernelModel, ProgramsNotRun
    from ..skel import skeleton

    store = trust.TrustStore()
    for path in args.trust:
        store.add_path(path, "session")
    if args.keyring != "session":
        try:
            int(args.keyring, 0)
        except ValueError:
            raise errors.InputError(
                f"--keyring {args.keyring!r}: with --model use session, 0/1/2 or a number"
            ) from None
    keyring_id = -3 if args.keyring == "session" else int(args.keyring, 0)
    skel = skeleton.load(args.skeleton)
    model = KernelModel(args.model, store)
    ld = loader.Loader(skel, keyring_id=keyring_id, unsigned=args.unsigned, backend=model,
                       check_kernel=False)
    mode = f"{'signed' if ld.signed else 'unsigned'}, {ld.scheme} scheme"
    try:
        ld.load().close()  # the model stops at the loader's run (ProgramsNotRun)
    except ProgramsNotRun:
        pass
    except (errors.KernelError, errors.UnsupportedFeature) as exc:
        err = exc.errno if exc.errno is not None else 0
        log = exc.log.strip().splitlines() if isinstance(exc, errors.KernelError) else []
        why = log[-1] if log else (exc.why if isinstance(exc, errors.UnsupportedFeature) else "")
        text = f"the {args.model} kernel would refuse this: {errors.errno_name(err)} ({err})"
        if isinstance(exc, errors.KernelError) and exc.hint:
            mode += f"; {exc.hint}"
        _common.emit(args, {"kernel": args.model, "loads": False, "errno": err,
                            "errno_name": errors.errno_name(err), "log": why, "mode": mode},
                     text + (f": {why}" if why else "") + f"\n  ({skel.name}: {mode})")
        return _common.EXIT_REJECTED
    _common.emit(args, {"kernel": args.model, "loads": True, "errno": None, "log": "",
                        "mode": mode},
                 f"the {args.model} kernel would load this: PROG_LOAD of the loader passes "
                 f"({skel.name}: {mode}; the model does not run the loader)")
    return _common.EXIT_OK
