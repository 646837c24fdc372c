"""Replay the fuzz corpus (fuzz/corpus/<target>/) without atheris.

Every committed input, crashers included, goes through its target's
``one_input``: any exception that is not a ``bpfsign.Error`` fails the test,
so a fixed crash stays fixed. ``fuzz/run.sh`` grows the corpus.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"
TARGETS = sorted(p.stem for p in FUZZ.glob("fuzz_*.py"))


def test_every_target_has_a_corpus() -> None:
    assert TARGETS == [
        "fuzz_cms",
        "fuzz_convert",
        "fuzz_der",
        "fuzz_insn",
        "fuzz_signcert",
        "fuzz_skeleton",
        "fuzz_x509",
    ]
    for t in TARGETS:
        assert any((FUZZ / "corpus" / t).iterdir()), t


@pytest.mark.parametrize("target", TARGETS)
def test_corpus_replays_without_a_crash(target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FUZZ))
    module = importlib.import_module(target)
    files = sorted((FUZZ / "corpus" / target).iterdir())
    for path in files:
        try:
            module.one_input(path.read_bytes())
        except Exception as exc:  # the fuzz rule: only bpfsign.Error may escape, and it did not
            pytest.fail(f"{path.relative_to(FUZZ.parent)}: {type(exc).__name__}: {exc}")
    sys.modules.pop(target, None)
