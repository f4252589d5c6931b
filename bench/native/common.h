/*
 * common.h - small helpers shared by the native benchmark tools
 * (refreader, counter, loadgen). Header-only, libc + linux headers only.
 *
 * Independent of the linux-obs library code on purpose: these tools are the
 * reference the library is measured against.
 */
#ifndef BENCH_NATIVE_COMMON_H
#define BENCH_NATIVE_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define TRACEFS_EVENTS "/sys/kernel/tracing/events"
#define MAX_CPUS 1024

/* Print a message (with strerror(errno) when err != 0) and exit(1). */
static inline void die(int err, const char *fmt, const char *arg)
{
    fprintf(stderr, "error: ");
    fprintf(stderr, fmt, arg ? arg : "");
    if (err)
        fprintf(stderr, ": %s", strerror(err));
    fputc('\n', stderr);
    exit(1);
}

/* CLOCK_MONOTONIC in nanoseconds (same clock the perf events use). */
static inline uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* CPU time consumed by the whole process (exact, scheduler-based). */
static inline uint64_t cputime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t tv_ns(struct timeval tv)
{
    return (uint64_t)tv.tv_sec * 1000000000ull + (uint64_t)tv.tv_usec * 1000ull;
}

/* user/system CPU time of `who` (RUSAGE_SELF / RUSAGE_CHILDREN) in ns. */
static inline void rusage_ns(int who, uint64_t *user, uint64_t *sys)
{
    struct rusage ru;
    if (getrusage(who, &ru) != 0)
        die(errno, "getrusage", NULL);
    *user = tv_ns(ru.ru_utime);
    *sys = tv_ns(ru.ru_stime);
}

/* Parse a non-negative decimal integer option value or die. */
static inline long long parse_num(const char *opt, const char *s)
{
    char *end;
    errno = 0;
    long long v = strtoll(s ? s : "", &end, 10);
    if (!s || errno || end == s || *end || v < 0)
        die(0, "bad value for %s", opt);
    return v;
}

/* Pin the calling thread to one CPU. */
static inline void pin_to_cpu(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0) {
        char buf[32];
        snprintf(buf, sizeof(buf), "%d", cpu);
        die(errno, "sched_setaffinity(cpu %s)", buf);
    }
}

/*
 * Resolve "system:event" to the tracepoint id found in
 * /sys/kernel/tracing/events/<system>/<event>/id.
 */
static inline uint64_t tracepoint_id(const char *spec)
{
    const char *colon = strchr(spec, ':');
    if (!colon || colon == spec || !colon[1])
        die(0, "tracepoint must be system:event, got '%s'", spec);
    char path[512];
    snprintf(path, sizeof(path), TRACEFS_EVENTS "/%.*s/%s/id",
             (int)(colon - spec), spec, colon + 1);
    FILE *f = fopen(path, "r");
    if (!f)
        die(errno, "cannot open %s (is tracefs mounted?)", path);
    unsigned long long id;
    if (fscanf(f, "%llu", &id) != 1)
        die(0, "cannot parse %s", path);
    fclose(f);
    return id;
}

/*
 * Parse /sys/devices/system/cpu/online ("0-3,5,7-8\n") into cpus[].
 * Returns the number of CPUs written.
 */
static inline int online_cpus(int *cpus, int max)
{
    FILE *f = fopen("/sys/devices/system/cpu/online", "r");
    if (!f)
        die(errno, "cannot open /sys/devices/system/cpu/online", NULL);
    char buf[4096];
    if (!fgets(buf, sizeof(buf), f))
        die(0, "empty /sys/devices/system/cpu/online", NULL);
    fclose(f);
    int n = 0;
    char *p = buf;
    while (*p && *p != '\n') {
        char *end;
        long lo = strtol(p, &end, 10), hi = lo;
        if (end == p)
            die(0, "cannot parse cpu list '%s'", buf);
        p = end;
        if (*p == '-') {
            hi = strtol(p + 1, &end, 10);
            if (end == p + 1)
                die(0, "cannot parse cpu list '%s'", buf);
            p = end;
        }
        for (long c = lo; c <= hi && n < max; c++)
            cpus[n++] = (int)c;
        if (*p == ',')
            p++;
    }
    return n;
}

static inline int perf_event_open(struct perf_event_attr *attr, pid_t pid,
                                  int cpu, int group_fd, unsigned long flags)
{
    return (int)syscall(SYS_perf_event_open, attr, pid, cpu, group_fd, flags);
}

/* Create (truncate) a file to tell a driver we are ready. */
static inline void touch_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die(errno, "cannot create ready file %s", path);
    close(fd);
}

#endif /* BENCH_NATIVE_COMMON_H */
