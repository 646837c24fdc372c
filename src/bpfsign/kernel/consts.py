"""The kernel's numbers that callers may name: commands, types, flags, keyrings.

Public so that library users, the CLI and the backends spell them one way;
the private syscall layer (``_sys``) takes them from here too. Values are the
UAPI's (``include/uapi/linux/bpf.h``, ``keyctl.h``; docs/kernel.md §3, §5).
"""

TYPE_CHECKING = False  # typing stays out of start-up (status is timed): "Final" is quoted
if TYPE_CHECKING:
    from typing import Final

# bpf commands (docs/kernel.md §3.1).
MAP_CREATE: "Final" = 0
MAP_LOOKUP_ELEM: "Final" = 1
MAP_UPDATE_ELEM: "Final" = 2
MAP_DELETE_ELEM: "Final" = 3
PROG_LOAD: "Final" = 5
OBJ_PIN: "Final" = 6
OBJ_GET: "Final" = 7
PROG_TEST_RUN: "Final" = 10
PROG_GET_NEXT_ID: "Final" = 11
PROG_GET_FD_BY_ID: "Final" = 13
OBJ_GET_INFO_BY_FD: "Final" = 15
RAW_TRACEPOINT_OPEN: "Final" = 17
BTF_LOAD: "Final" = 18
MAP_FREEZE: "Final" = 22
LINK_CREATE: "Final" = 28
ITER_CREATE: "Final" = 33

COMMAND_NAMES: "Final" = {
    MAP_CREATE: "BPF_MAP_CREATE",
    MAP_LOOKUP_ELEM: "BPF_MAP_LOOKUP_ELEM",
    MAP_UPDATE_ELEM: "BPF_MAP_UPDATE_ELEM",
    MAP_DELETE_ELEM: "BPF_MAP_DELETE_ELEM",
    PROG_LOAD: "BPF_PROG_LOAD",
    OBJ_PIN: "BPF_OBJ_PIN",
    OBJ_GET: "BPF_OBJ_GET",
    PROG_TEST_RUN: "BPF_PROG_TEST_RUN",
    PROG_GET_NEXT_ID: "BPF_PROG_GET_NEXT_ID",
    PROG_GET_FD_BY_ID: "BPF_PROG_GET_FD_BY_ID",
    OBJ_GET_INFO_BY_FD: "BPF_OBJ_GET_INFO_BY_FD",
    RAW_TRACEPOINT_OPEN: "BPF_RAW_TRACEPOINT_OPEN",
    BTF_LOAD: "BPF_BTF_LOAD",
    MAP_FREEZE: "BPF_MAP_FREEZE",
    LINK_CREATE: "BPF_LINK_CREATE",
    ITER_CREATE: "BPF_ITER_CREATE",
}

# Program and map types (docs/kernel.md §3.2).
PROG_TYPE_SOCKET_FILTER: "Final" = 1
PROG_TYPE_TRACING: "Final" = 26
PROG_TYPE_LSM: "Final" = 29
PROG_TYPE_SYSCALL: "Final" = 31
MAP_TYPE_HASH: "Final" = 1
MAP_TYPE_ARRAY: "Final" = 2
MAP_TYPE_PERCPU_ARRAY: "Final" = 6
MAP_TYPE_RINGBUF: "Final" = 27

MAP_TYPE_NAMES: "Final" = {
    1: "hash",
    2: "array",
    3: "prog_array",
    5: "percpu_hash",
    6: "percpu_array",
    9: "lru_hash",
    27: "ringbuf",
}
PROG_TYPE_NAMES: "Final" = {
    1: "socket_filter",
    2: "kprobe",
    5: "tracepoint",
    17: "raw_tracepoint",
    26: "tracing",
    29: "lsm",
    31: "syscall",
}

# Flags.
BPF_F_SLEEPABLE: "Final" = 0x10  # prog_flags
BPF_F_RDONLY_PROG: "Final" = 0x80  # map_flags: programs may not write (.rodata, .kconfig)
BPF_F_MMAPABLE: "Final" = 0x400  # map_flags: user space may mmap the array

# Attach types (enum bpf_attach_type).
BPF_TRACE_ITER: "Final" = 28
BPF_LSM_MAC: "Final" = 27  # LSM programs (docs/kernel.md §11)

OBJ_NAME_LEN: "Final" = 16
HASH_SIZE: "Final" = 32
#: signature_size above KMALLOC_MAX_CACHE_SIZE is EINVAL with an empty log (docs/kernel.md §12.8)
MAX_SIGNATURE_SIZE: "Final" = 8192

# Keyrings (docs/kernel.md §5).
KEY_SPEC_THREAD_KEYRING: "Final" = -1
KEY_SPEC_PROCESS_KEYRING: "Final" = -2
KEY_SPEC_SESSION_KEYRING: "Final" = -3
KEY_SPEC_USER_KEYRING: "Final" = -4
KEY_SPEC_USER_SESSION_KEYRING: "Final" = -5
KEYCTL_GET_KEYRING_ID: "Final" = 0
KEYCTL_JOIN_SESSION_KEYRING: "Final" = 1
KEYCTL_DESCRIBE: "Final" = 6
KEYCTL_LINK: "Final" = 8
KEYCTL_UNLINK: "Final" = 9
KEYCTL_SEARCH: "Final" = 10
KEYCTL_READ: "Final" = 11

KEYCTL_NAMES: "Final" = {
    KEYCTL_GET_KEYRING_ID: "KEYCTL_GET_KEYRING_ID",
    KEYCTL_JOIN_SESSION_KEYRING: "KEYCTL_JOIN_SESSION_KEYRING",
    KEYCTL_DESCRIBE: "KEYCTL_DESCRIBE",
    KEYCTL_LINK: "KEYCTL_LINK",
    KEYCTL_UNLINK: "KEYCTL_UNLINK",
    KEYCTL_SEARCH: "KEYCTL_SEARCH",
    KEYCTL_READ: "KEYCTL_READ",
}
