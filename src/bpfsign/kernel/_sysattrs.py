"""The attr and info layouts that ``_sys`` builds only on first use.

Making a ctypes Structure class costs (each field is a descriptor made at class
creation), and ``bpfsign status``, timed against ``bpftool prog show``, needs
none of these: object info, pins, ids, raw tracepoints. ``_sys`` keeps the
layouts every path needs and hands these out as its own attributes, importing
this module the first time one is asked for; callers name them ``_sys.X`` as
before. Same conventions as ``_sys``: x86-64, sized as libbpf sends them
(docs/kernel.md §4).
"""

import ctypes

from .consts import OBJ_NAME_LEN

_u8, _u32, _s32, _u64 = ctypes.c_uint8, ctypes.c_uint32, ctypes.c_int32, ctypes.c_uint64


class InfoAttr(ctypes.Structure):
    """``BPF_OBJ_GET_INFO_BY_FD``, 16 bytes."""

    _fields_ = [("bpf_fd", _u32), ("info_len", _u32), ("info", _u64)]


class MapInfo(ctypes.Structure):
    """``struct bpf_map_info``, 104 bytes; ``hash``/``hash_size`` are inputs."""

    _fields_ = [
        ("type", _u32),
        ("id", _u32),
        ("key_size", _u32),
        ("value_size", _u32),
        ("max_entries", _u32),
        ("map_flags", _u32),
        ("name", ctypes.c_char * OBJ_NAME_LEN),
        ("ifindex", _u32),
        ("btf_vmlinux_value_type_id", _u32),
        ("netns_dev", _u64),
        ("netns_ino", _u64),
        ("btf_id", _u32),
        ("btf_key_type_id", _u32),
        ("btf_value_type_id", _u32),
        ("btf_vmlinux_id", _u32),
        ("map_extra", _u64),
        ("hash", _u64),
        ("hash_size", _u32),
        ("_pad", _u32),
    ]


class ProgInfo(ctypes.Structure):
    """``struct bpf_prog_info``, 232 bytes."""

    _fields_ = [
        ("type", _u32),
        ("id", _u32),
        ("tag", _u8 * 8),
        ("jited_prog_len", _u32),
        ("xlated_prog_len", _u32),
        ("jited_prog_insns", _u64),
        ("xlated_prog_insns", _u64),
        ("load_time", _u64),
        ("created_by_uid", _u32),
        ("nr_map_ids", _u32),
        ("map_ids", _u64),
        ("name", ctypes.c_char * OBJ_NAME_LEN),
        ("ifindex", _u32),
        ("gpl_compatible", _u32),
        ("netns_dev", _u64),
        ("netns_ino", _u64),
        ("nr_jited_ksyms", _u32),
        ("nr_jited_func_lens", _u32),
        ("jited_ksyms", _u64),
        ("jited_func_lens", _u64),
        ("btf_id", _u32),
        ("func_info_rec_size", _u32),
        ("func_info", _u64),
        ("nr_func_info", _u32),
        ("nr_line_info", _u32),
        ("line_info", _u64),
        ("jited_line_info", _u64),
        ("nr_jited_line_info", _u32),
        ("line_info_rec_size", _u32),
        ("jited_line_info_rec_size", _u32),
        ("nr_prog_tags", _u32),
        ("prog_tags", _u64),
        ("run_time_ns", _u64),
        ("run_cnt", _u64),
        ("recursion_misses", _u64),
        ("verified_insns", _u32),
        ("attach_btf_obj_id", _u32),
        ("attach_btf_id", _u32),
        ("_pad", _u32),
    ]


class RawTracepointAttr(ctypes.Structure):
    """``BPF_RAW_TRACEPOINT_OPEN``: name pointer (NULL for BTF-typed programs), prog fd."""

    _fields_ = [("name", _u64), ("prog_fd", _u32), ("_pad", _u32), ("cookie", _u64)]


class ObjPinAttr(ctypes.Structure):
    """``BPF_OBJ_PIN``: path pointer, fd, flags, path_fd."""

    _fields_ = [
        ("pathname", _u64),
        ("bpf_fd", _u32),
        ("file_flags", _u32),
        ("path_fd", _s32),
        ("_pad", _u32),
    ]


class GetIdAttr(ctypes.Structure):
    """``BPF_PROG_GET_NEXT_ID`` / ``BPF_PROG_GET_FD_BY_ID``: id in, next id out, open flags."""

    _fields_ = [("id", _u32), ("next_id", _u32), ("open_flags", _u32)]
