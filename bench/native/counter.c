/*
 * counter - count a tracepoint on all CPUs without sampling.
 *
 * Opens the tracepoint as a pure counting perf event (sample_period 0, no
 * ring, no mmap) on every online CPU, enabled immediately, and sums the
 * counts at the end. It costs the traced tasks almost nothing and gives an
 * independent figure of how many events the kernel generated, to cross-check
 * a reader's events + lost.
 *
 * Usage:
 *   counter --tracepoint system:event [--duration-ms D] [--filter-pid PID]
 *           [--ready-file PATH] [--cpu N]
 *   Runs until SIGINT/SIGTERM, or for D ms. --ready-file PATH is created once
 *   every CPU's counter is open (and therefore counting).
 *
 * Output: ONE JSON line: {"tracepoint":"sys:ev","count":N,"wall_ns":..}
 */
#define _GNU_SOURCE
#include "common.h"

#include <signal.h>
#include <sys/ioctl.h>

static void usage(FILE *out)
{
    fputs("usage: counter --tracepoint system:event [--duration-ms D]\n"
          "         [--filter-pid PID] [--ready-file PATH] [--cpu N]\n"
          "Prints {\"tracepoint\":..,\"count\":N,\"wall_ns\":..} at the end.\n",
          out);
}

int main(int argc, char **argv)
{
    const char *tp = NULL, *ready_file = NULL;
    long long duration_ms = -1, filter_pid = -1, pin = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--tracepoint") && v) {
            tp = v, i++;
        } else if (!strcmp(a, "--duration-ms")) {
            duration_ms = parse_num(a, v), i++;
        } else if (!strcmp(a, "--filter-pid")) {
            filter_pid = parse_num(a, v), i++;
        } else if (!strcmp(a, "--ready-file") && v) {
            ready_file = v, i++;
        } else if (!strcmp(a, "--cpu")) {
            pin = parse_num(a, v), i++;
        } else {
            usage(stderr);
            die(0, "unknown or incomplete option %s", a);
        }
    }
    if (!tp) {
        usage(stderr);
        return 1;
    }
    if (pin >= 0)
        pin_to_cpu((int)pin);

    /* Block the signals; sigtimedwait() below doubles as the timer. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);

    const uint64_t id = tracepoint_id(tp);
    int cpus[MAX_CPUS], fds[MAX_CPUS];
    const int ncpu = online_cpus(cpus, MAX_CPUS);

    struct perf_event_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.type = PERF_TYPE_TRACEPOINT;
    attr.size = sizeof(attr);
    attr.config = id;
    attr.sample_period = 0; /* counting only: no samples, no ring */
    attr.disabled = 0;      /* counts from perf_event_open() on */

    /* With a filter, start disabled so the filter applies to every count. */
    if (filter_pid >= 0)
        attr.disabled = 1;

    int nfd = 0;
    for (int i = 0; i < ncpu; i++) {
        int fd = perf_event_open(&attr, -1, cpus[i], -1, PERF_FLAG_FD_CLOEXEC);
        if (fd < 0 && errno == ENODEV)
            continue;
        if (fd < 0)
            die(errno, "perf_event_open(%s)", tp);
        if (filter_pid >= 0) {
            char filter[64];
            snprintf(filter, sizeof(filter), "common_pid == %lld", filter_pid);
            if (ioctl(fd, PERF_EVENT_IOC_SET_FILTER, filter) != 0)
                die(errno, "PERF_EVENT_IOC_SET_FILTER '%s'", filter);
        }
        fds[nfd++] = fd;
    }
    if (nfd == 0)
        die(0, "no online CPU could be opened", NULL);
    if (filter_pid >= 0)
        for (int i = 0; i < nfd; i++)
            if (ioctl(fds[i], PERF_EVENT_IOC_ENABLE, 0) != 0)
                die(errno, "PERF_EVENT_IOC_ENABLE", NULL);

    const uint64_t t0 = mono_ns();
    if (ready_file)
        touch_file(ready_file);

    if (duration_ms >= 0) {
        struct timespec ts = { duration_ms / 1000, (duration_ms % 1000) * 1000000L };
        /* Returns on SIGINT/SIGTERM or when the duration has elapsed. */
        while (sigtimedwait(&set, NULL, &ts) < 0 && errno == EINTR) {
            uint64_t el = mono_ns() - t0, want = (uint64_t)duration_ms * 1000000u;
            if (el >= want)
                break;
            ts.tv_sec = (time_t)((want - el) / 1000000000u);
            ts.tv_nsec = (long)((want - el) % 1000000000u);
        }
    } else {
        int sig;
        sigwait(&set, &sig);
    }

    for (int i = 0; i < nfd; i++)
        ioctl(fds[i], PERF_EVENT_IOC_DISABLE, 0);
    const uint64_t wall = mono_ns() - t0;
    uint64_t count = 0;
    for (int i = 0; i < nfd; i++) {
        uint64_t v;
        if (read(fds[i], &v, sizeof(v)) != (ssize_t)sizeof(v))
            die(errno, "read(perf fd)", NULL);
        count += v;
    }
    printf("{\"tracepoint\":\"%s\",\"count\":%llu,\"wall_ns\":%llu}\n", tp,
           (unsigned long long)count, (unsigned long long)wall);
    fflush(stdout);
    for (int i = 0; i < nfd; i++)
        close(fds[i]);
    return 0;
}
