// dax-touch: the testbed's DAX fault workload (built -static on the host, run in the guest).
//   dax-touch FILE SIZE_MIB
// Creates FILE, fallocates SIZE_MIB, checks that the kernel reports it as a DAX file
// (statx STATX_ATTR_DAX), maps it MAP_SHARED at a 2 MiB-aligned address (so the
// filesystem can serve PMD faults), writes one byte per 4 KiB page, reads them back,
// msyncs, and prints the fault counts from getrusage. Exit 0 on success, 3 if the file
// is not DAX, 1 on any other error.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef STATX_ATTR_DAX
#define STATX_ATTR_DAX 0x00200000
#endif
#define PMD (2UL << 20)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s FILE SIZE_MIB\n", argv[0]);
        return 1;
    }
    const char *path = argv[1];
    size_t size = (size_t)strtoul(argv[2], NULL, 10) << 20;
    if (size == 0) {
        fprintf(stderr, "dax-touch: SIZE_MIB must be > 0\n");
        return 1;
    }
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0644);
    if (fd < 0) { fprintf(stderr, "dax-touch: open %s: %s\n", path, strerror(errno)); return 1; }
    if (fallocate(fd, 0, 0, size)) { fprintf(stderr, "dax-touch: fallocate: %s\n", strerror(errno)); return 1; }
    struct statx sx;
    int dax = -1;
    if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &sx) == 0 && (sx.stx_attributes_mask & STATX_ATTR_DAX))
        dax = !!(sx.stx_attributes & STATX_ATTR_DAX);
    printf("file=%s size_mib=%zu statx_dax=%d\n", path, size >> 20, dax);
    if (dax == 0) { fprintf(stderr, "dax-touch: %s is not a DAX file\n", path); return 3; }

    // reserve size + 2 MiB, then map the file at the first 2 MiB boundary inside
    char *res = mmap(NULL, size + PMD, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (res == MAP_FAILED) { fprintf(stderr, "dax-touch: reserve: %s\n", strerror(errno)); return 1; }
    char *want = (char *)(((uintptr_t)res + PMD - 1) & ~(PMD - 1));
    char *p = mmap(want, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
    if (p == MAP_FAILED) { fprintf(stderr, "dax-touch: mmap: %s\n", strerror(errno)); return 1; }
    printf("mapped at %p (2M-aligned=%d)\n", (void *)p, ((uintptr_t)p & (PMD - 1)) == 0);

    struct rusage r0, r1, r2;
    getrusage(RUSAGE_SELF, &r0);
    double t0 = now();
    for (size_t off = 0; off < size; off += 4096) p[off] = (char)(off >> 12);
    double t1 = now();
    getrusage(RUSAGE_SELF, &r1);
    unsigned long sum = 0;
    for (size_t off = 0; off < size; off += 4096) sum += (unsigned char)p[off];
    getrusage(RUSAGE_SELF, &r2);
    if (msync(p, size, MS_SYNC)) { fprintf(stderr, "dax-touch: msync: %s\n", strerror(errno)); return 1; }
    printf("write pass: %zu pages in %.3f s, minor faults %ld, major faults %ld\n", size >> 12, t1 - t0,
           r1.ru_minflt - r0.ru_minflt, r1.ru_majflt - r0.ru_majflt);
    printf("read pass: minor faults %ld (checksum %lu)\n", r2.ru_minflt - r1.ru_minflt, sum);
    munmap(p, size);
    close(fd);
    return 0;
}
