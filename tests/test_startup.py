"""What the timed start-up path of ``bpfsign status`` imports and builds.

``bench/bench_vm_status.py`` times ``bpfsign status --json`` against ``bpftool prog
show --json`` in an emulated guest where Python bytecode runs ~25x slower, so a
module or a ctypes class made for nothing shows there.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from bpfsign.cli._options import fields, options

#: the modules under ``bpfsign status``'s start-up (the shared ones and its own)
START_UP = (
    "bpfsign.cli, bpfsign.cli._common, bpfsign.cli._options, bpfsign.kernel._sys, "
    "bpfsign.cli.status, bpfsign.kernel.status"
)


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_start_up_path_does_not_import___future__() -> None:
    """``from __future__ import annotations`` imports the ``__future__`` module itself."""
    assert _run(f"import sys, {START_UP}; print('__future__' in sys.modules)") == "False"


def test_sys_builds_the_layouts_status_does_not_need_on_first_use() -> None:
    code = (
        "import sys; from bpfsign.kernel import _sys as S; "
        "print('bpfsign.kernel._sysattrs' in sys.modules, sorted(set(S._LATER) & set(vars(S)))); "
        "info = S.MapInfo; A = sys.modules['bpfsign.kernel._sysattrs']; "
        "print(info is A.MapInfo, all(vars(S)[n] is getattr(A, n) for n in S._LATER))"
    )
    assert _run(code).splitlines() == ["False []", "True True"]


def test_sys_still_refuses_a_name_it_does_not_have() -> None:
    from bpfsign.kernel import _sys as S

    with pytest.raises(AttributeError) as exc:
        S.Nope  # type: ignore[attr-defined]  # noqa: B018
    assert str(exc.value) == "module 'bpfsign.kernel._sys' has no attribute 'Nope'"


def test_options_reads_evaluated_annotations_too() -> None:
    """A command module without ``__future__`` gives ``@options`` types, not strings."""
    namespace: dict[str, object] = {"options": options}
    source = "@options\nclass Opts:\n    files: tuple[str, ...]\n    json: bool = False\n"
    exec(compile(source, "<opts>", "exec", dont_inherit=True), namespace)
    cls = namespace["Opts"]
    assert vars(cls)["__annotations__"] == {"files": tuple[str, ...], "json": bool}
    assert fields(cls) == ("files", "json")
    made = cls(files=("a",))  # type: ignore[operator]
    assert (made.files, made.json) == (("a",), False)
    assert made == cls(files=("a",), json=False)  # type: ignore[operator]
