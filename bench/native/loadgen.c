/*
 * loadgen - generate a known tracepoint load for the linux-obs benchmarks.
 *
 * Usage:
 *   loadgen flat    --cpu N --duration-ms D [--delay-ms W]
 *       getppid() in a tight loop (clock checked every 1024 calls).
 *       Fires syscalls:sys_enter_getppid / sys_exit_getppid.
 *   loadgen rate    --cpu N --rate R --duration-ms D [--delay-ms W]
 *       getppid() paced to R calls/s: busy-waits on CLOCK_MONOTONIC, and at
 *       each clock check issues the calls that are due (at most 1024 per burst).
 *   loadgen exec    --cpu N --rate R --duration-ms D [--delay-ms W]
 *       posix_spawn("/bin/true") + waitpid, R times per second (same pacing).
 *       Fires sched:sched_process_exec, sched:sched_process_fork, ...
 *   loadgen maxexec --cpu N --duration-ms D [--delay-ms W]
 *       posix_spawn("/bin/true") + waitpid as fast as possible.
 *
 *   --cpu N        pin to CPU N (sched_setaffinity; spawned children inherit it)
 *   --delay-ms W   sleep W ms before starting the load (lets a reader attach)
 *
 * Prints nothing until the end, then ONE JSON line on stdout:
 *   {"mode":"flat","calls":N,"wall_ns":..,"user_ns":..,"sys_ns":..,
 *    "cpu_ns_per_call":..,"rate":..}
 * rate = achieved calls per second. user/sys are getrusage(RUSAGE_SELF)
 * deltas over the load phase only (the delay is excluded); cpu_ns is the
 * same from CLOCK_PROCESS_CPUTIME_ID (exact; the user/sys split from
 * getrusage is tick-sampled, only their sum is scaled to the exact runtime). Exec modes add
 * "children_user_ns"/"children_sys_ns" (RUSAGE_CHILDREN) and "target_rate".
 * Rate mode adds "busy_ns" (wall time of the pacing-loop iterations that
 * issued calls: the calls themselves, without the busy-wait) and
 * "busy_ns_per_call": its cpu_ns_per_call is ~1e9/R whatever the tracing
 * costs, since it never sleeps.
 */
#define _GNU_SOURCE
#include "common.h"

#include <spawn.h>
#include <sys/wait.h>

extern char **environ;

enum mode { M_FLAT, M_RATE, M_EXEC, M_MAXEXEC };
static const char *mode_names[] = { "flat", "rate", "exec", "maxexec" };

static void usage(FILE *out)
{
    fputs("usage:\n"
          "  loadgen flat    --cpu N --duration-ms D [--delay-ms W]\n"
          "  loadgen rate    --cpu N --rate R --duration-ms D [--delay-ms W]\n"
          "  loadgen exec    --cpu N --rate R --duration-ms D [--delay-ms W]\n"
          "  loadgen maxexec --cpu N --duration-ms D [--delay-ms W]\n"
          "flat/rate call getppid(); exec/maxexec spawn /bin/true.\n"
          "Prints one JSON line with calls, wall/user/sys ns at the end.\n",
          out);
}

/* One spawn of /bin/true, waited for. */
static void spawn_true(void)
{
    static char *const argv[] = { "/bin/true", NULL };
    pid_t pid;
    int rc = posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ);
    if (rc != 0)
        die(rc, "posix_spawn /bin/true", NULL);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            die(errno, "waitpid", NULL);
    }
}

static inline void do_getppid(void)
{
    /* syscall() so libc cannot cache or short-cut it. */
    syscall(SYS_getppid);
}

/* Number of calls due after `elapsed` ns at `rate` calls/s. */
static inline uint64_t due_calls(uint64_t elapsed, uint64_t rate)
{
    return (uint64_t)((unsigned __int128)elapsed * rate / 1000000000u);
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2;
    }
    enum mode mode;
    if (!strcmp(argv[1], "flat"))
        mode = M_FLAT;
    else if (!strcmp(argv[1], "rate"))
        mode = M_RATE;
    else if (!strcmp(argv[1], "exec"))
        mode = M_EXEC;
    else if (!strcmp(argv[1], "maxexec"))
        mode = M_MAXEXEC;
    else {
        usage(stderr);
        return 1;
    }

    long long cpu = -1, rate = -1, duration_ms = -1, delay_ms = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--cpu")) {
            cpu = parse_num(a, v), i++;
        } else if (!strcmp(a, "--rate")) {
            rate = parse_num(a, v), i++;
        } else if (!strcmp(a, "--duration-ms")) {
            duration_ms = parse_num(a, v), i++;
        } else if (!strcmp(a, "--delay-ms")) {
            delay_ms = parse_num(a, v), i++;
        } else {
            die(0, "unknown option %s (see --help)", a);
        }
    }
    if (duration_ms < 0)
        die(0, "--duration-ms is required", NULL);
    if ((mode == M_RATE || mode == M_EXEC) && rate <= 0)
        die(0, "--rate R (> 0) is required for mode %s", mode_names[mode]);
    if (cpu >= 0)
        pin_to_cpu((int)cpu);

    if (delay_ms > 0) {
        struct timespec ts = { delay_ms / 1000, (delay_ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }

    uint64_t u0, s0, cu0, cs0;
    rusage_ns(RUSAGE_SELF, &u0, &s0);
    rusage_ns(RUSAGE_CHILDREN, &cu0, &cs0);
    const uint64_t c0 = cputime_ns();
    const uint64_t start = mono_ns();
    const uint64_t end = start + (uint64_t)duration_ms * 1000000u;
    uint64_t calls = 0, now = start, busy_ns = 0;

    switch (mode) {
    case M_FLAT:
        for (;;) {
            for (int i = 0; i < 1024; i++)
                do_getppid();
            calls += 1024;
            if ((now = mono_ns()) >= end)
                break;
        }
        break;
    case M_RATE: {
        /* Busy-wait pacing: catch up with what is due, in bursts <= 1024.
         * busy_ns: wall time of the loop iterations that issued calls (from
         * the clock read before a burst to the next one), i.e. the time the
         * calls took, without the pacing spin. No extra clock reads. */
        uint64_t prev = start;
        int prev_busy = 0;
        while ((now = mono_ns()) < end) {
            if (prev_busy)
                busy_ns += now - prev;
            uint64_t due = due_calls(now - start, (uint64_t)rate);
            uint64_t burst = due > calls ? due - calls : 0;
            if (burst > 1024)
                burst = 1024;
            for (uint64_t i = 0; i < burst; i++)
                do_getppid();
            calls += burst;
            prev = now;
            prev_busy = burst > 0;
        }
        if (prev_busy)
            busy_ns += now - prev;
        break;
    }
    case M_EXEC:
        while ((now = mono_ns()) < end) {
            if (due_calls(now - start, (uint64_t)rate) > calls) {
                spawn_true();
                calls++;
            }
        }
        break;
    case M_MAXEXEC:
        while ((now = mono_ns()) < end) {
            spawn_true();
            calls++;
        }
        break;
    }

    const uint64_t wall = now - start;
    uint64_t u1, s1, cu1, cs1;
    rusage_ns(RUSAGE_SELF, &u1, &s1);
    rusage_ns(RUSAGE_CHILDREN, &cu1, &cs1);
    const uint64_t cpu_ns = cputime_ns() - c0;
    const uint64_t user = u1 - u0, sys = s1 - s0;

    printf("{\"mode\":\"%s\",\"calls\":%llu,\"wall_ns\":%llu,\"user_ns\":%llu,"
           "\"sys_ns\":%llu,\"cpu_ns_per_call\":%.1f,\"rate\":%.0f",
           mode_names[mode], (unsigned long long)calls,
           (unsigned long long)wall, (unsigned long long)user,
           (unsigned long long)sys,
           calls ? (double)(user + sys) / (double)calls : 0.0,
           wall ? (double)calls * 1e9 / (double)wall : 0.0);
    printf(",\"cpu_ns\":%llu", (unsigned long long)cpu_ns);
    if (mode == M_RATE || mode == M_EXEC)
        printf(",\"target_rate\":%lld", rate);
    if (mode == M_RATE)
        printf(",\"busy_ns\":%llu,\"busy_ns_per_call\":%.1f",
               (unsigned long long)busy_ns,
               calls ? (double)busy_ns / (double)calls : 0.0);
    if (mode == M_EXEC || mode == M_MAXEXEC)
        printf(",\"children_user_ns\":%llu,\"children_sys_ns\":%llu",
               (unsigned long long)(cu1 - cu0), (unsigned long long)(cs1 - cs0));
    printf("}\n");
    return 0;
}
