/*
 * diskbench: the disk figures of scripts/bench.sh, measured inside a Linux guest
 * (scripts/linux-disk.sh builds it statically into the guest's root filesystem).
 *
 *   diskbench seqwrite DEV MIB    writes MIB MiB from offset 0 in 1 MiB requests, then fsync
 *   diskbench seqread DEV MIB     reads them back in 1 MiB requests
 *   diskbench randread DEV OPS    OPS reads of 4 KiB at random 4 KiB-aligned offsets
 *
 * Every transfer bypasses the page cache (O_DIRECT), so each is one request to the device.
 * Prints one line: "diskbench: NAME BYTES B in USEC us" with the elapsed time from the
 * guest's monotonic clock (under QEMU's -icount that clock counts instructions). The random
 * offsets come from a fixed-seed generator, so every run reads the same blocks.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int fail(const char *what)
{
    fprintf(stderr, "diskbench: %s: ", what);
    perror(NULL);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: diskbench seqwrite|seqread|randread DEV COUNT\n");
        return 2;
    }
    const char *mode = argv[1];
    uint64_t count = strtoull(argv[3], NULL, 10);
    int writing = strcmp(mode, "seqwrite") == 0;
    int random = strcmp(mode, "randread") == 0;
    if (!writing && !random && strcmp(mode, "seqread") != 0) {
        fprintf(stderr, "diskbench: unknown mode %s\n", mode);
        return 2;
    }
    int fd = open(argv[2], (writing ? O_WRONLY : O_RDONLY) | O_DIRECT);
    if (fd < 0)
        return fail(argv[2]);
    uint64_t size = 0;
    if (ioctl(fd, BLKGETSIZE64, &size) != 0)
        return fail("BLKGETSIZE64");
    size_t chunk = random ? 4096 : 1 << 20;
    uint64_t ops = count;
    if (!random && count * chunk > size) {
        fprintf(stderr, "diskbench: %s holds %llu bytes, fewer than %llu MiB\n", argv[2],
                (unsigned long long)size, (unsigned long long)count);
        return 1;
    }
    void *buf;
    if (posix_memalign(&buf, 4096, chunk) != 0)
        return fail("posix_memalign");
    memset(buf, 0xa5, chunk);
    uint64_t blocks = size / 4096, state = 0x9e3779b97f4a7c15u;
    uint64_t start = now_us();
    for (uint64_t i = 0; i < ops; i++) {
        off_t off = (off_t)(i * chunk);
        if (random) {
            /* xorshift64: the same offsets on every run */
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            off = (off_t)((state % blocks) * 4096);
        }
        ssize_t done = writing ? pwrite(fd, buf, chunk, off) : pread(fd, buf, chunk, off);
        if (done != (ssize_t)chunk)
            return fail(writing ? "pwrite" : "pread");
    }
    if (writing && fsync(fd) != 0)
        return fail("fsync");
    uint64_t elapsed = now_us() - start;
    printf("diskbench: %s %llu B in %llu us\n", mode, (unsigned long long)(ops * chunk),
           (unsigned long long)elapsed);
    return 0;
}
