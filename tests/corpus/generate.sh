#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Regenerates the real-world light-skeleton corpus in tests/corpus/ from
# Debian's linux-source-7.3 (trixie-backports):
#   - reads the light-skeleton lists (LSKELS, LSKELS_EXTRA, LSKELS_SIGNED, any
#     other LSKELS_*) from tools/testing/selftests/bpf/Makefile of that tree;
#   - compiles each program as the selftests do (clang -g -O2 --target=bpfel
#     -mcpu=v3 with BPF_CFLAGS and the system includes), against vmlinux.h
#     dumped from the BTF of the 7.3.4 kernel image (linux-binary .deb);
#   - links it with `bpftool gen object` three times (7.3.4 bpftool) and
#     checks that the second and third links are identical, like the Makefile;
#   - generates headers with three bpftools: bookworm 7.1 (-L), sid
#     7.8.0+7.2.13 (-L, -S) and trixie-backports 7.8.0+7.3.4 (-L, -S), signing
#     with the TEST-ONLY key of tests/fixtures/keys;
#   - copies the kernel's checked-in iterators light skeletons unchanged;
#   - writes PROVENANCE (versions, SHA-256s, commands, what failed and why).
#
# Usage: bash tests/corpus/generate.sh [--fetch-only | --object PROG]
#   --fetch-only: only fetch linux-source-7.3 and sid's libbpf headers and put
#   the headers tests/corpus/refload.py compiles against into the cache (CI).
#   --object PROG: only build PROG's linked object, $CACHE/build/obj/PROG.llinked3.o,
#   and the 7.3.4 bpftool (what bench/bench_corpus.py's sign benchmark runs).
# Needs: clang-19 (apt-get install clang-19), bookworm's bpftool, python3,
# network access to the Debian mirror on the first run (about 185 MB). Packages
# are fetched with a private apt configuration (the machine's apt sources are
# never touched) into $BPFSIGN_CORPUS_CACHE (default tests/corpus/.cache,
# gitignored). sid's bpftool and libc come from tests/fixtures/generate.sh's
# cache (--fetch-only). No root, no bpf() needed.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FIXTURES=$(cd "$HERE/../fixtures" && pwd)
CACHE=${BPFSIGN_CORPUS_CACHE:-$HERE/.cache}
FCACHE=${BPFSIGN_FIXTURE_CACHE:-$FIXTURES/.cache}
BUILD=$CACHE/build
SKEL=$HERE/skel
KEY=$FIXTURES/keys/TEST-ONLY-lskel-signing.key.pem
CERT=$FIXTURES/keys/TEST-ONLY-lskel-signing.cert.pem
CLANG=${CLANG:-clang-19}

SUITE=trixie-backports
KABI=7.3.4+deb13-amd64
# Pinned trixie-backports packages (Debian version and .deb SHA-256).
TB_PKGS=(linux-source-7.3 "linux-binary-$KABI" bpftool)
declare -A TB_VERSION=(
	[linux-source-7.3]=7.3.4-1~bpo13+1
	["linux-binary-$KABI"]=7.3.4-1~bpo13+1
	[bpftool]=7.8.0+7.3.4-1~bpo13+1
)
declare -A TB_SHA256=(
	[linux-source-7.3]=703e369ddd4cce971452f5a593ee55df3a5c10c83caf0fa0df039633ed181ee3
	["linux-binary-$KABI"]=7e3248d03a84dcdda88c567aa8c4038f2e7795d2dd167b112c56f8901b6f513f
	[bpftool]=d688784c5b09164039329bd47ca442baafccc6f4edd1776f4352c9b3f7713759
)
declare -A TB_ARCH=([linux-source-7.3]=all ["linux-binary-$KABI"]=amd64 [bpftool]=amd64)

TREE=$CACHE/tree/linux-source-7.3
SELFTESTS=$TREE/tools/testing/selftests/bpf
# Debug paths (BTF line info travels in the blob) are relative to the selftests
# directory, whose name is mapped, so the headers do not depend on where the
# repository or the cache is.
MAP_SELFTESTS=/bpfsign/corpus/linux-source-7.3/tools/testing/selftests/bpf

die() { echo "generate.sh: $*" >&2; exit 1; }
note() { echo "generate.sh: $*" >&2; }

# --- packages, fetched without touching the machine's apt sources -----------

apt_private() {
	local w=$CACHE/apt
	apt-get -o Dir::Etc::sourcelist="$w/sources.list" -o Dir::Etc::sourceparts=- \
		-o Dir::State::Lists="$w/lists" -o Dir::Cache::Archives="$w/archives" \
		-o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= \
		-o APT::Architecture=amd64 -o APT::Architectures::=amd64 \
		-o DPkg::Lock::Timeout=600 -o APT::Sandbox::User=root "$@"
}

debian_mirror() {
	local uri
	uri=$( { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}';
		grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
			sed -E 's/^deb +(\[[^]]*\] +)?//' | awk '{print $1}'; } |
		grep -E '/debian/?$' | head -n1)
	[[ -n $uri ]] || die "no Debian mirror URI found in the machine's apt sources"
	echo "${uri%/}"
}

deb_file() { # package -> expected .deb path in the cache
	local pkg=$1 ver=${TB_VERSION[$1]}
	echo "$CACHE/debs/${pkg}_${ver//:/%3a}_${TB_ARCH[$pkg]}.deb"
}

fetch_packages() { # [packages...] (default: all of TB_PKGS)
	local pkg missing=() deb line pkgs=("$@")
	((${#pkgs[@]})) || pkgs=("${TB_PKGS[@]}")
	mkdir -p "$CACHE/debs" "$CACHE/apt/lists/partial" "$CACHE/apt/archives/partial"
	for pkg in "${pkgs[@]}"; do
		[[ -f $(deb_file "$pkg") ]] || missing+=("$pkg=${TB_VERSION[$pkg]}")
	done
	if ((${#missing[@]})); then
		line="deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(debian_mirror) $SUITE main"
		if [[ ! -f $CACHE/apt/sources.list || $(cat "$CACHE/apt/sources.list") != "$line" ]]; then
			echo "$line" >"$CACHE/apt/sources.list"
		fi
		note "fetching from $SUITE: ${missing[*]}"
		apt_private -qq update
		(cd "$CACHE/debs" && apt_private -qq download "${missing[@]}") ||
			die "could not download ${missing[*]} from $SUITE; the pinned versions may have left the mirror: update TB_VERSION/TB_SHA256 in generate.sh and regenerate"
	fi
	for pkg in "${pkgs[@]}"; do
		deb=$(deb_file "$pkg")
		echo "${TB_SHA256[$pkg]}  $deb" | sha256sum --quiet -c - ||
			die "$deb does not match its pinned SHA-256; delete it and rerun"
		if [[ $(cat "$CACHE/root/$pkg/.deb-sha256" 2>/dev/null) != "${TB_SHA256[$pkg]}" ]]; then
			rm -rf "$CACHE/root/$pkg"
			mkdir -p "$CACHE/root/$pkg"
			dpkg-deb -x "$deb" "$CACHE/root/$pkg"
			echo "${TB_SHA256[$pkg]}" >"$CACHE/root/$pkg/.deb-sha256"
		fi
	done
	# The source tree: only the parts the build reads.
	local sha=${TB_SHA256[linux-source-7.3]}
	if [[ $(cat "$CACHE/tree/.deb-sha256" 2>/dev/null) != "$sha" ]]; then
		rm -rf "$CACHE/tree"
		mkdir -p "$CACHE/tree"
		note "unpacking linux-source-7.3 (tools/, scripts/, kernel/bpf/preload/)"
		tar -xJf "$CACHE/root/linux-source-7.3/usr/src/linux-source-7.3.tar.xz" -C "$CACHE/tree" \
			linux-source-7.3/tools linux-source-7.3/scripts linux-source-7.3/kernel/bpf/preload
		echo "$sha" >"$CACHE/tree/.deb-sha256"
	fi
	# sid's bpftool 7.8.0+7.2.13 and glibc, pinned by the fixture script.
	BPFSIGN_FIXTURE_CACHE=$FCACHE bash "$FIXTURES/generate.sh" --fetch-only
	# The 7.3.4 skel_internal.h (and the libbpf/UAPI headers it includes) for the
	# C reference loader (refload.py) of the 7.3.4 and kernel headers.
	local inc=$CACHE/refinc/v73
	rm -rf "$inc"
	mkdir -p "$inc/bpf" "$inc/linux"
	local h
	for h in skel_internal.h bpf.h libbpf_common.h libbpf_legacy.h libbpf_version.h; do
		cp "$TREE/tools/lib/bpf/$h" "$inc/bpf/$h"
	done
	for h in bpf.h bpf_common.h; do
		cp "$TREE/tools/include/uapi/linux/$h" "$inc/linux/$h"
	done
}

# Foreign bpftools need glibc >= 2.38: run them through sid's loader.
sid_run() {
	local libc=$FCACHE/root/libc6/usr/lib/x86_64-linux-gnu
	"$libc/ld-linux-x86-64.so.2" --library-path "$libc:/lib/x86_64-linux-gnu" "$@"
}
bpftool71() { /usr/sbin/bpftool "$@"; }
bpftool72() { sid_run "$FCACHE/root/bpftool/usr/sbin/bpftool" "$@"; }
bpftool73() { sid_run "$CACHE/root/bpftool/usr/sbin/bpftool" "$@"; }

require_tools() {
	local t
	for t in "$CLANG" python3 dpkg-deb apt-get sha256sum unzstd; do
		command -v "$t" >/dev/null || die "missing $t (apt-get install clang-19 python3 zstd)"
	done
	[[ -x /usr/sbin/bpftool ]] || die "missing /usr/sbin/bpftool (apt-get install bpftool)"
	[[ -f $KEY && -f $CERT ]] || die "missing the TEST-ONLY key pair in $FIXTURES/keys"
}

# --- the program list, read from the selftests Makefile ----------------------

# Prints "LIST prog" for every .c in every LSKELS* variable of the Makefile.
lskel_lists() {
	awk '
		/^LSKELS[A-Z_]*[ \t]*:?=/ { name = $1; sub(/[ \t]*:?=.*/, "", name); collecting = 1
			line = $0; sub(/^[^=]*=/, "", line) }
		collecting && !/^LSKELS/ { line = $0 }
		collecting {
			cont = (line ~ /\\[ \t]*$/); sub(/\\[ \t]*$/, "", line)
			n = split(line, w, /[ \t]+/)
			for (i = 1; i <= n; i++) if (w[i] ~ /\.c$/) print name, w[i]
			if (!cont) collecting = 0
		}' "$SELFTESTS/Makefile"
}

# --- vmlinux.h and the include directory -------------------------------------

prepare_includes() {
	local vmlinuz inc=$BUILD/include
	mkdir -p "$inc/bpf"
	vmlinuz=$CACHE/root/linux-binary-$KABI/usr/lib/modules/$KABI/vmlinuz
	[[ -f $vmlinuz ]] || die "no vmlinuz in linux-binary-$KABI"
	# vmlinux.h from the 7.3.4 kernel's own BTF: unpack vmlinuz with the tree's
	# extract-vmlinux, then dump its .BTF section with the 7.3.4 bpftool.
	bash "$TREE/scripts/extract-vmlinux" "$vmlinuz" >"$BUILD/vmlinux" 2>"$BUILD/extract-vmlinux.log"
	bpftool73 btf dump file "$BUILD/vmlinux" format c >"$inc/vmlinux.h"
	# libbpf's BPF-side headers, as tools/lib/bpf's install_headers puts them.
	local h
	for h in bpf_helpers.h bpf_tracing.h bpf_core_read.h bpf_endian.h usdt.bpf.h; do
		cp "$TREE/tools/lib/bpf/$h" "$inc/bpf/$h"
	done
	python3 "$TREE/scripts/bpf_doc.py" --header --file "$TREE/tools/include/uapi/linux/bpf.h" \
		>"$inc/bpf/bpf_helper_defs.h"
}

# The selftests' get_sys_includes: the host clang's search list as -idirafter.
sys_includes() {
	"$CLANG" -v -E - </dev/null 2>&1 |
		sed -n '/<...> search starts here:/,/End of search list./{ s| \(/.*\)|-idirafter \1|p }'
}

# --- build --------------------------------------------------------------------

declare -A FAILED=()   # header or object -> reason
declare -A LIST_OF=()  # program -> Makefile list
PROGS=()

one_line() { tr '\n' ' ' | sed -e 's/  */ /g' -e 's/ *$//' | cut -c1-600; }

# The Makefile's BPF_CFLAGS, split into preprocessor and compiler flags.
CPPFLAGS_BPF=(-D__TARGET_ARCH_x86 -mlittle-endian -I. -I../../../include/uapi -I../../../include
	-Ilibarena/include -DENABLE_ATOMICS_TESTS)
CFLAGS_BPF=(-g -Wall -Werror -std=gnu11 -fno-strict-aliasing -Wno-microsoft-anon-tag -fms-extensions
	-Wno-compare-distinct-pointer-types -Wno-initializer-overrides)

compile_one() { # prog (without .c) -> $BUILD/obj/prog.bpf.o or FAILED
	local p=$1 out=$BUILD/obj/$1.bpf.o err inc
	# Two steps, for reproducibility: preprocess in the selftests directory with
	# relative paths (as the Makefile), then compile the preprocessed text from
	# stdin to stdout. Compiled directly, clang 19 orders some BTF types
	# differently depending on the paths it is given, even the output file's name
	# (measured: kfunc_call_test, kfunc_call_test_subprog, test_ksyms_module and
	# test_ksyms_weak differ between two cache directories, and the same .i
	# compiled to -o .../kfunc_call_test.bpf.o and to -o .../zz.o in one
	# directory gives two different objects); from stdin to stdout the object
	# depends only on the text. Same flags, same code.
	inc=$(realpath --relative-to="$SELFTESTS" "$BUILD/include")
	# shellcheck disable=SC2046
	if ! err=$(cd "$SELFTESTS" && "$CLANG" "${CFLAGS_BPF[@]}" "${CPPFLAGS_BPF[@]}" -I"$inc" \
		$(sys_includes) -O2 --target=bpfel -mcpu=v3 -E "progs/$p.c" -o "$BUILD/obj/$p.i" 2>&1 &&
		"$CLANG" "${CFLAGS_BPF[@]}" -fdebug-compilation-dir="$MAP_SELFTESTS" -O2 --target=bpfel \
			-mcpu=v3 -x cpp-output -c - -o - <"$BUILD/obj/$p.i" 2>&1 >"$out"); then
		FAILED[$p.bpf.o]="clang: $(echo "$err" | grep -m3 'error' | one_line)"
		rm -f "$out"
		return 1
	fi
	# Link as the Makefile does: three times, the last two must agree.
	local o=$BUILD/obj/$p
	if ! err=$( { bpftool73 gen object "$o.llinked1.o" "$out" &&
		bpftool73 gen object "$o.llinked2.o" "$o.llinked1.o" &&
		bpftool73 gen object "$o.llinked3.o" "$o.llinked2.o" &&
		cmp "$o.llinked2.o" "$o.llinked3.o"; } 2>&1); then
		FAILED[$p.bpf.o]="bpftool 7.3.4 gen object: $(echo "$err" | one_line)"
		return 1
	fi
}

# gen OUT TOOLNAME PROG ARGS...: generate twice, insist on identical output.
gen() {
	local hdr=$1 out=$BUILD/skel/$1 tool=$2 p=$3 err
	shift 3
	local obj=$BUILD/obj/$p.llinked3.o name=${p}_lskel
	if ! err=$("$tool" gen skeleton "$@" "$obj" name "$name" 2>&1 >"$out"); then
		FAILED[$hdr]="$tool gen skeleton $(echo "$*" | sed "s|$FIXTURES/|tests/fixtures/|g"): $(echo "$err" | one_line)"
		rm -f "$out"
		return 0
	fi
	"$tool" gen skeleton "$@" "$obj" name "$name" >"$out.again" 2>/dev/null
	cmp -s "$out" "$out.again" || die "$tool is not deterministic for $hdr"
	rm -f "$out.again"
}

build() {
	rm -rf "$BUILD"
	mkdir -p "$BUILD/obj" "$BUILD/skel"
	prepare_includes
	local list p
	while read -r list p; do
		p=${p%.c}
		[[ -n ${LIST_OF[$p]:-} ]] && continue
		LIST_OF[$p]=$list
		PROGS+=("$p")
	done < <(lskel_lists)
	((${#PROGS[@]})) || die "no LSKELS lists found in $SELFTESTS/Makefile"
	for p in "${PROGS[@]}"; do
		compile_one "$p" || { note "FAILED to build $p: ${FAILED[$p.bpf.o]}"; continue; }
		gen "$p.v71.lskel.h" bpftool71 "$p" -L
		gen "$p.v72.lskel.h" bpftool72 "$p" -L
		gen "$p.v72.signed.lskel.h" bpftool72 "$p" -S -k "$KEY" -i "$CERT"
		gen "$p.v73.lskel.h" bpftool73 "$p" -L
		gen "$p.v73.signed.lskel.h" bpftool73 "$p" -S -k "$KEY" -i "$CERT"
	done
	# The kernel's own checked-in bpf_preload skeletons, as they are.
	local e
	for e in little big; do
		cp "$TREE/kernel/bpf/preload/iterators/iterators.lskel-$e-endian.h" \
			"$BUILD/skel/iterators.kernel-$e-endian.lskel.h"
	done
}

# --- provenance ---------------------------------------------------------------

write_provenance() {
	local f=$BUILD/PROVENANCE pkg p h
	{
		echo "# The corpus in tests/corpus/skel/ and how it was made; written by generate.sh."
		echo "# Inputs: Debian $SUITE packages (version, .deb SHA-256), fetched with a private apt config"
		for pkg in "${TB_PKGS[@]}"; do
			echo "$SUITE $pkg ${TB_VERSION[$pkg]} ${TB_SHA256[$pkg]}"
		done
		echo "# Debian sid packages, pinned and fetched by tests/fixtures/generate.sh"
		sed -n 's/^sid /sid /p' "$FIXTURES/VERSIONS"
		echo "# Debian 12 (bookworm) packages"
		for pkg in clang-19 bpftool; do
			echo "bookworm $pkg $(dpkg-query -W -f='${Version}' "$pkg")"
		done
		echo "# Reported by the tools"
		echo "clang: $("$CLANG" --version | head -n1)"
		echo "bpftool-7.1 (/usr/sbin/bpftool): $(bpftool71 version | one_line)"
		echo "bpftool-7.2.13 (sid 7.8.0+7.2.13-1): $(bpftool72 version | one_line)"
		echo "bpftool-7.3.4 ($SUITE 7.8.0+7.3.4-1~bpo13+1): $(bpftool73 version | one_line)"
		echo "# vmlinux.h: bpftool-7.3.4 btf dump file <vmlinux> format c, where <vmlinux> is"
		echo "# usr/lib/modules/$KABI/vmlinuz of linux-binary-$KABI unpacked by the tree's"
		echo "# scripts/extract-vmlinux ($(one_line <"$BUILD/extract-vmlinux.log"))"
		echo "vmlinux sha256 $(sha256sum <"$BUILD/vmlinux" | cut -d' ' -f1)"
		echo "vmlinux.h sha256 $(sha256sum <"$BUILD/include/vmlinux.h" | cut -d' ' -f1)"
		echo "# Commands (per program P of the lists below; run in the tree's tools/testing/selftests/bpf,"
		echo "# <include> = the build's include dir relative to it (vmlinux.h, libbpf's bpf/*.h, bpf_helper_defs.h)"
		echo "preprocess: $CLANG ${CFLAGS_BPF[*]} ${CPPFLAGS_BPF[*]} -I<include> $(sys_includes | one_line) -O2 --target=bpfel -mcpu=v3 -E progs/P.c -o P.i"
		echo "compile: $CLANG ${CFLAGS_BPF[*]} -fdebug-compilation-dir=$MAP_SELFTESTS -O2 --target=bpfel -mcpu=v3 -x cpp-output -c - -o - <P.i >P.bpf.o"
		echo "link: bpftool-7.3.4 gen object P.llinked1.o P.bpf.o; ... llinked2.o llinked1.o; ... llinked3.o llinked2.o; cmp llinked2.o llinked3.o"
		echo "gen P.v71.lskel.h: bpftool-7.1 gen skeleton -L P.llinked3.o name P_lskel"
		echo "gen P.v72.lskel.h: bpftool-7.2.13 gen skeleton -L P.llinked3.o name P_lskel"
		echo "gen P.v72.signed.lskel.h: bpftool-7.2.13 gen skeleton -S -k tests/fixtures/keys/TEST-ONLY-lskel-signing.key.pem -i tests/fixtures/keys/TEST-ONLY-lskel-signing.cert.pem P.llinked3.o name P_lskel"
		echo "gen P.v73.lskel.h: bpftool-7.3.4 gen skeleton -L P.llinked3.o name P_lskel"
		echo "gen P.v73.signed.lskel.h: bpftool-7.3.4 gen skeleton -S -k (same key) -i (same cert) P.llinked3.o name P_lskel"
		echo "gen iterators.kernel-{little,big}-endian.lskel.h: kernel/bpf/preload/iterators/iterators.lskel-{little,big}-endian.h, copied unchanged"
		echo "# Programs, from the LSKELS* lists of tools/testing/selftests/bpf/Makefile"
		for p in "${PROGS[@]}"; do
			if [[ -n ${FAILED[$p.bpf.o]:-} ]]; then
				echo "program $p ${LIST_OF[$p]} failed"
			else
				echo "program $p ${LIST_OF[$p]} built $(sha256sum <"$BUILD/obj/$p.llinked3.o" | cut -d' ' -f1)"
			fi
		done
		echo "# What failed, and why"
		local any=0
		for h in $(printf '%s\n' "${!FAILED[@]}" | sort); do
			echo "failed $h: ${FAILED[$h]}"
			any=1
		done
		((any)) || echo "failed: nothing"
		echo "# Headers (SHA-256)"
		(cd "$BUILD/skel" && sha256sum -- *.lskel.h | awk '{print "header " $2 " " $1}')
	} >"$f"
}

install_outputs() {
	local changed=0 f
	mkdir -p "$SKEL"
	for f in "$BUILD"/skel/*.lskel.h; do
		if ! cmp -s "$f" "$SKEL/$(basename "$f")"; then
			note "updated skel/$(basename "$f")"
			changed=1
		fi
		cp "$f" "$SKEL/.$(basename "$f").tmp" && mv -f "$SKEL/.$(basename "$f").tmp" "$SKEL/$(basename "$f")"
	done
	for f in "$SKEL"/*.lskel.h; do
		[[ -f $BUILD/skel/$(basename "$f") ]] || { note "removed stale skel/$(basename "$f")"; rm -f "$f"; changed=1; }
	done
	cmp -s "$BUILD/PROVENANCE" "$HERE/PROVENANCE" || { note "updated PROVENANCE"; changed=1; }
	cp "$BUILD/PROVENANCE" "$HERE/.PROVENANCE.tmp" && mv -f "$HERE/.PROVENANCE.tmp" "$HERE/PROVENANCE"
	((changed)) && note "corpus changed" || note "corpus unchanged (deterministic)"
}

main() {
	if [[ ${1:-} == --fetch-only ]]; then
		# CI: only what the C reference loader needs (the 7.3.4 skel_internal.h
		# from linux-source-7.3, sid's libbpf 1.7); no compiler, no generation.
		fetch_packages linux-source-7.3
		return
	fi
	if [[ ${1:-} == --object && $# -eq 2 ]]; then
		require_tools
		fetch_packages
		mkdir -p "$BUILD/obj"
		[[ -s $BUILD/include/vmlinux.h ]] || prepare_includes
		compile_one "$2" || die "could not build $2: ${FAILED[$2.bpf.o]}"
		note "built $BUILD/obj/$2.llinked3.o"
		return
	fi
	[[ $# -eq 0 ]] || die "usage: generate.sh [--fetch-only | --object PROG]"
	require_tools
	fetch_packages
	build
	write_provenance
	install_outputs
}

main "$@"
