// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * C reference loader for one corpus header: libbpf's own skel_internal.h
 * (the version matching the bpftool that made the header) runs the header's
 * own <name>__open() and <name>__load(); then, for every map and program of
 * the skeleton, the kernel's bpf_map_info / bpf_prog_info is printed as one
 * JSON object, or the step and errno at which loading failed.
 *
 * Built by tests/corpus/refload.py with:
 *   -DREF_HEADER='"x.lskel.h"' -DREF_NAME=x   header and skeleton name
 *   -DREF_MAPS(X)=X(a) X(b) ...               map members (skel->maps.a)
 *   -DREF_PROGS(X)=X(p) ...                    program members (skel->progs.p)
 *   -DREF_SIGNED                               the skeleton has keyring_id (bpftool -S):
 *                                              set it to the session keyring between
 *                                              __open and __load, as the selftests do
 * and the include path of the skel_internal.h it is checked against.
 *
 * Usage: refload [N]   without N: load once and print JSON;
 *                      with N: time N open+load+destroy cycles (benchmark),
 *                      printing one line of nanoseconds per cycle.
 * Built with -shared -fPIC instead, it is a library whose ref_bench() does the
 * timed cycles inside the caller's process (bench/bench_corpus.py).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <bpf/skel_internal.h>

static const char *ref_step = "";
static int ref_errno;

/* Record where the header's __load failed: the loader run or a section mmap. */
static inline int ref_load_and_run(struct bpf_load_and_run_opts *opts)
{
	int err = bpf_load_and_run(opts);

	if (err) {
		ref_step = opts->errstr ? opts->errstr : "bpf_load_and_run";
		ref_errno = err < 0 ? -err : err;
	}
	return err;
}

static inline void *ref_finalize_map_data(__u64 *init_val, size_t mmap_sz, int flags, int fd)
{
	void *addr = skel_finalize_map_data(init_val, mmap_sz, flags, fd);

	if (!addr && !ref_errno) {
		ref_step = flags & PROT_WRITE ? "mmap section map read-write" : "mmap section map read-only";
		ref_errno = errno;
	}
	return addr;
}

#define bpf_load_and_run ref_load_and_run
#define skel_finalize_map_data ref_finalize_map_data
#include REF_HEADER
#undef bpf_load_and_run
#undef skel_finalize_map_data

#ifndef KEY_SPEC_SESSION_KEYRING
#define KEY_SPEC_SESSION_KEYRING -3
#endif

#define REF_CAT2(a, b) a##b
#define REF_CAT(a, b) REF_CAT2(a, b)
#define REF_FN(suffix) REF_CAT(REF_NAME, suffix)
#define REF_STR2(x) #x
#define REF_STR(x) REF_STR2(x)

static int ref_obj_info(int fd, void *info, __u32 len)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.info.bpf_fd = fd;
	attr.info.info_len = len;
	attr.info.info = (long)info;
	return skel_sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr, sizeof(attr));
}

static void ref_map(const char *member, int fd, int *first)
{
	struct bpf_map_info info;

	memset(&info, 0, sizeof(info));
	printf("%s{\"name\": \"%s\", \"fd_ok\": %s", *first ? "" : ", ", member, fd > 0 ? "true" : "false");
	*first = 0;
	if (fd > 0 && ref_obj_info(fd, &info, sizeof(info)) == 0)
		printf(", \"kernel_name\": \"%s\", \"type\": %u, \"key_size\": %u, \"value_size\": %u, "
		       "\"max_entries\": %u, \"map_flags\": %u",
		       info.name, info.type, info.key_size, info.value_size, info.max_entries,
		       info.map_flags);
	else if (fd > 0)
		printf(", \"info_errno\": %d", errno);
	putchar('}');
}

static void ref_prog(const char *member, int fd, int *first)
{
	struct bpf_prog_info info;

	memset(&info, 0, sizeof(info));
	printf("%s{\"name\": \"%s\", \"fd_ok\": %s", *first ? "" : ", ", member, fd > 0 ? "true" : "false");
	*first = 0;
	if (fd > 0 && ref_obj_info(fd, &info, sizeof(info)) == 0) {
		printf(", \"kernel_name\": \"%s\", \"type\": %u, \"attach_btf_id\": %u, \"tag\": \"",
		       info.name, info.type, info.attach_btf_id);
		for (int i = 0; i < 8; i++)
			printf("%02x", info.tag[i]);
		putchar('"');
	} else if (fd > 0) {
		printf(", \"info_errno\": %d", errno);
	}
	putchar('}');
}

/* <name>__open_and_load(), with keyring_id set for signed skeletons. */
static struct REF_NAME *ref_open_and_load(int *err)
{
	struct REF_NAME *skel = REF_FN(__open)();

	*err = 0;
	if (!skel) {
		ref_step = "open";
		ref_errno = errno;
		return NULL;
	}
#ifdef REF_SIGNED
	skel->keyring_id = KEY_SPEC_SESSION_KEYRING;
#endif
	*err = REF_FN(__load)(skel);
	return skel;
}

static int ref_once(void)
{
	int err, first;
	struct REF_NAME *skel = ref_open_and_load(&err);

	if (!skel) {
		printf("{\"skeleton\": \"%s\", \"ok\": false, \"step\": \"open\", \"errno\": %d}\n",
		       REF_STR(REF_NAME), ref_errno);
		return 0;
	}
	if (err) {
		printf("{\"skeleton\": \"%s\", \"ok\": false, \"step\": \"%s\", \"errno\": %d, \"ret\": %d}\n",
		       REF_STR(REF_NAME), ref_step, ref_errno ? ref_errno : -err, err);
		REF_FN(__destroy)(skel);
		return 0;
	}
	printf("{\"skeleton\": \"%s\", \"ok\": true, \"maps\": [", REF_STR(REF_NAME));
	first = 1;
#define X(m) ref_map(#m, skel->maps.m.map_fd, &first);
	REF_MAPS(X)
#undef X
	printf("], \"progs\": [");
	first = 1;
#define X(p) ref_prog(#p, skel->progs.p.prog_fd, &first);
	REF_PROGS(X)
#undef X
	printf("]}\n");
	REF_FN(__destroy)(skel);
	return 0;
}

static long long ref_clock_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long ref_now_ns(void)
{
	return ref_clock_ns(CLOCK_MONOTONIC);
}

/*
 * Benchmark: n cycles of open+load+destroy; out[2i] is the wall-clock (monotonic)
 * nanoseconds of cycle i and out[2i+1] this thread's CPU nanoseconds (user and
 * kernel: the loader program runs in the caller's context), which other processes
 * on a shared machine cannot inflate. Exported so that a benchmark can call it in
 * its own process (built with -shared, refload.py binary(shared=True)): then both
 * loaders run with the same fd table, address space and scheduling, and only the
 * loader differs. Returns 0, or the errno of a failed load.
 */
int ref_bench(long n, long long *out)
{
	for (long i = 0; i < n; i++) {
		long long t0 = ref_now_ns(), c0 = ref_clock_ns(CLOCK_THREAD_CPUTIME_ID);
		int err;
		struct REF_NAME *skel = ref_open_and_load(&err);

		if (!skel || err) {
			if (skel)
				REF_FN(__destroy)(skel);
			return ref_errno ? ref_errno : EINVAL;
		}
		REF_FN(__destroy)(skel);
		out[2 * i + 1] = ref_clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
		out[2 * i] = ref_now_ns() - t0;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return ref_once();
	/* Benchmark: N cycles of open+load+destroy, one time per line (ns). */
	long n = strtol(argv[1], NULL, 10);
	long long *ns = calloc(n > 0 ? 2 * n : 2, sizeof(*ns));

	if (!ns || ref_bench(n, ns)) {
		fprintf(stderr, "refload: load failed: %s errno %d\n", ref_step, ref_errno);
		return 1;
	}
	for (long i = 0; i < n; i++)
		printf("%lld\n", ns[2 * i]);
	free(ns);
	return 0;
}
