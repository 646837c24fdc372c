"""Shared glue for the fuzz targets: the crash rule, and running under atheris.

Each target is a module with ``one_input(data: bytes) -> None``. The rule is
the one every bpfsign entry point promises: bad input raises a
``bpfsign.Error`` and nothing else. ``checked`` turns any other exception into
a crash for atheris; ``tests/test_fuzz_corpus.py`` replays the committed corpus
through the same ``one_input`` without atheris.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"


def checked(body: Callable[[bytes], object]) -> Callable[[bytes], None]:
    """``body`` with ``bpfsign.Error`` counted as a clean rejection."""
    import bpfsign

    def one_input(data: bytes) -> None:
        with contextlib.suppress(bpfsign.Error):
            body(data)

    return one_input


_LIBRARY = (
    "bpfsign",
    "bpfsign.errors",
    "bpfsign._fileio",
    "bpfsign.crypto.der",
    "bpfsign.crypto._oids",
    "bpfsign.crypto.x509",
    "bpfsign.crypto.cms",
    "bpfsign.crypto.trust",
    "bpfsign.crypto.verify",
    "bpfsign.crypto.keys",
    "bpfsign.crypto.signer",
    "bpfsign.skel.insn",
    "bpfsign.skel.model",
    "bpfsign.skel.escapes",
    "bpfsign.skel._tokenize",
    "bpfsign.skel._parse",
    "bpfsign.skel._write",
    "bpfsign.skel.skeleton",
    "bpfsign.skel.globaldata",
    "bpfsign.skel.scheme",
)


def run(module_name: str, default_max_len: int = 4096) -> None:
    """``python fuzz/fuzz_x.py [libFuzzer args] [corpus dirs]`` under atheris, bpfsign instrumented."""
    import importlib

    import atheris

    # bpfsign is imported lazily by the targets: import (and so instrument) it all here,
    # or the fuzzer runs without coverage feedback.
    with atheris.instrument_imports(include=["bpfsign"]):
        for name in _LIBRARY:
            importlib.import_module(name)
    module = importlib.import_module(module_name)
    argv = list(sys.argv)
    # libFuzzer re-runs argv[0] through the shell for -merge/-fork: make that this interpreter
    argv[0] = f"{sys.executable} {Path(argv[0]).resolve()}"
    if not any(a.startswith("-max_len=") for a in argv):
        argv.insert(1, f"-max_len={default_max_len}")
    atheris.Setup(argv, module.one_input)
    atheris.Fuzz()
