"""Typed global data: the header's section structs laid out as the C compiler does."""

from __future__ import annotations

import dataclasses
import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from bpfsign.errors import InputError
from bpfsign.kernel import loader
from bpfsign.skel import globaldata, skeleton

FIXTURES = Path(__file__).parent / "fixtures"
SKEL = FIXTURES / "skel"
REFERENCE = json.loads((FIXTURES / "reference.json").read_text())


def _skel(name: str) -> skeleton.Skeleton:
    return skeleton.load(SKEL / name)


def _section(name: str, section: str) -> skeleton.MapSpec:
    return next(m for m in _skel(name).maps if m.name == section)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_every_section_layout_matches_the_c_compilers_offsets(name: str) -> None:
    """reference.json holds each variable's offset and size from the ELF symbols."""
    skel = _skel(name)
    # the sections the header maps (a static-only .rodata has neither image nor mapping)
    sections = {m.name: m for m in skel.maps if m.section is not None and m.mmapable}
    assert set(sections) == set(REFERENCE[name]["sections"])
    for ident, spec in sections.items():
        ref = REFERENCE[name]["sections"][ident]
        layout = globaldata.section_layout(spec, skel.name)
        got = {
            f.name: {"offset": f.offset, "size": f.size}
            for f in layout.fields
            if not f.name.startswith("__pad")
        }  # bpftool's padding members are no symbols
        assert got == ref["variables"], (name, ident)
        # the struct covers every visible variable; statics and string literals may follow
        # (a section with none is an empty struct, as in C)
        ends = [v["offset"] + v["size"] for v in ref["variables"].values()]
        assert max(ends, default=0) <= layout.size <= ref["mmap_sz"]
        assert layout.unplaced == ()


def test_struct_typed_members_the_header_does_not_define_are_flagged_opaque() -> None:
    rodata = globaldata.section_layout(_section("multi.lskel.h", "rodata"), "multi")
    assert rodata.opaque == ("cfg",)
    assert rodata.field("cfg") == globaldata.FieldLayout("cfg", "struct multi_config", 0, 40, True)
    data = globaldata.section_layout(_section("multi.lskel.h", "data"), "multi")
    assert data.opaque == () and data.field("generation").type == "__u64"


def test_the_parser_reads_member_declarations() -> None:
    bss = _section("counter.lskel.h", "bss")
    assert [(v.name, v.type, v.pointer, v.dims) for v in bss.fields] == [
        ("enter_events", "__u32", False, ()),
        ("getpid_calls", "__u32", False, ()),
        ("target_tgid", "__u32", False, ()),
    ]
    assert bss.fields[0].line == 27
    assert [m.fields for m in _skel("counter.lskel.h").maps if m.section is None] == [()]


SYNTHETIC = """\
		__u8 a;
		char __pad0[7];
		__u64 b;
		int c[3];
		bool d;
		long e;
		char *p;
		short f __attribute__((aligned(16)));
		const volatile unsigned int cv;
		long long unsigned int g;
		signed char h[2][3];
		_Bool i;
		struct opaque_t s;
		__u32 last;
"""
# what the includer defines; our parser never sees it
OPAQUE_DEF = "struct opaque_t { __u32 x; __u16 y; };"


def _synthetic_spec(image_size: int) -> skeleton.MapSpec:
    path = SKEL / "counter.lskel.h"
    text = skeleton.read_text(path)
    old = "\t\t__u32 enter_events;\n\t\t__u32 getpid_calls;\n\t\t__u32 target_tgid;\n"
    assert text.count(old) == 1
    skel = skeleton.parse(text.replace(old, SYNTHETIC), path=str(path))
    bss = next(m for m in skel.maps if m.name == "bss")
    return dataclasses.replace(bss, initial_value=bytes(image_size))


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_layout_equals_gcc_offsetof_for_every_kind_of_member(tmp_path: Path) -> None:
    """The independent reference: gcc compiles the same struct and prints offsetof/sizeof."""
    members = ["a", "__pad0", "b", "c", "d", "e", "p", "f", "cv", "g", "h", "i", "s", "last"]
    src = tmp_path / "layout.c"
    prints = "".join(
        f'printf("%zu %zu\\n", offsetof(struct s, {n}), sizeof(((struct s *)0)->{n}));\n'
        for n in members
    )
    src.write_text(
        "#include <stdio.h>\n#include <stddef.h>\n#include <stdbool.h>\n#include <linux/types.h>\n"
        f"{OPAQUE_DEF}\nstruct s {{\n{SYNTHETIC}}};\nint main(void) {{\n{prints}"
        'printf("%zu\\n", sizeof(struct s));\nreturn 0;\n}\n'
    )
    exe = tmp_path / "layout"
    subprocess.run(["gcc", "-O0", "-o", str(exe), str(src)], check=True)
    rows = [
        tuple(map(int, line.split()))
        for line in subprocess.run(
            [str(exe)], check=True, capture_output=True, text=True
        ).stdout.splitlines()
    ]
    expected = dict(zip(members, rows[:-1], strict=True))
    last_off, last_size = expected["last"]
    layout = globaldata.section_layout(_synthetic_spec(last_off + last_size), "synthetic")
    got = {f.name: (f.offset, f.size) for f in layout.fields}
    assert got == expected
    assert layout.size == rows[-1][0]
    assert layout.opaque == ("s",)
    assert {f.name: f.type for f in layout.fields}["h"] == "signed char[2][3]"
    assert {f.name: f.type for f in layout.fields}["p"] == "char *"


def test_two_undefined_types_in_a_row_leave_the_rest_unplaced() -> None:
    spec = _synthetic_spec(200)
    fields = [
        *spec.fields[:2],
        *(dataclasses.replace(v, type="struct x") for v in spec.fields[2:4]),
    ]
    layout = globaldata.section_layout(dataclasses.replace(spec, fields=tuple(fields)), "t")
    assert [f.name for f in layout.fields] == ["a", "__pad0"]
    assert layout.unplaced == ("b", "c")


def test_a_struct_longer_than_its_image_is_an_input_error() -> None:
    spec = dataclasses.replace(_section("counter.lskel.h", "bss"), initial_value=bytes(8))
    with pytest.raises(
        InputError,
        match=r"section bss: its struct as declared ends at byte 12, "
        r"past the section image \(8 bytes\)",
    ):
        globaldata.section_layout(spec, "counter")


def test_build_image_sets_named_members_and_keeps_the_rest() -> None:
    spec = _section("sockfilter.lskel.h", "rodata")
    layout = globaldata.section_layout(spec, "sockfilter")
    image = globaldata.build_image(layout, spec.initial_value or b"", {"only_proto": 17})
    assert len(image) == 5
    assert struct.unpack("<IB", image) == (
        struct.unpack("<I", (spec.initial_value or b"")[:4])[0],
        17,
    )
    with pytest.raises(
        InputError,
        match=r"section rodata has no member 'nope' "
        r"\(it has: snap_len, only_proto\)",
    ):
        globaldata.build_image(layout, spec.initial_value or b"", {"nope": 1})
    with pytest.raises(InputError, match=r"rodata.only_proto \(__u8\): cannot store 'x'"):
        globaldata.build_image(layout, spec.initial_value or b"", {"only_proto": "x"})


def test_opaque_members_take_exactly_their_size_in_bytes() -> None:
    spec = _section("multi.lskel.h", "rodata")
    layout = globaldata.section_layout(spec, "multi")
    cfg = bytes(range(40))
    assert globaldata.build_image(layout, spec.initial_value or b"", {"cfg": cfg}) == cfg
    with pytest.raises(
        InputError,
        match=r"rodata.cfg \(struct multi_config, not defined in the "
        r"header\) is 40 raw bytes here; got 3",
    ):
        globaldata.build_image(layout, spec.initial_value or b"", {"cfg": b"abc"})


@pytest.mark.parametrize(
    "kw",
    [
        {"initial_values": {"data": {"sample_every": 42}}},
        {"initial_values": {"data": struct.pack("<I", 42)}},
        {"max_entries": {"counts": 777}},
    ],
)
def test_overrides_for_a_signed_mode_loader_are_refused_not_dropped(kw: dict[str, object]) -> None:
    """bpftool -S loaders take their map sizes and images from the signed data (docs/lskel.md §6)."""
    ld = loader.Loader(_skel("counter.signed.lskel.h"), unsigned=True, check_kernel=False)
    assert ld.audit.mode == "signed"
    what, name = ("max_entries", "counts") if "max_entries" in kw else ("initial_value", "data")
    with pytest.raises(InputError) as info:
        ld.load(**kw)  # type: ignore[arg-type]
    assert str(info.value) == (
        f"{SKEL / 'counter.signed.lskel.h'}: cannot set {what} of {name} for counter: a "
        "signed-mode loader (bpftool -S) takes map sizes and initial values from its signed "
        "data, never from the caller; it would be silently ignored. Change it in the BPF "
        "object and regenerate (and re-sign)"
    )
