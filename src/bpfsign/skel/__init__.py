"""Layer 2, light skeletons as data: instructions, headers, schemes.

Owns the BPF instruction codec and disassembler, the light-skeleton model with
its byte-exact header parser and writer, typed global-data sections, the two
signing schemes (load-time and 6.18 in-loader), the loader audit and the
6.18 → load-time conversion. It may import :mod:`bpfsign.crypto` and the
top-level helpers; it never makes a syscall and never imports
:mod:`bpfsign.kernel` or :mod:`bpfsign.cli`.
"""
