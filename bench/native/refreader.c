/*
 * refreader - minimal, correct native reference reader for one tracepoint.
 *
 * Opens the tracepoint as a sampling perf event (period 1) on every online
 * CPU, mmaps one ring per CPU, and drains the rings from an epoll loop,
 * copying every sample into a 1 MiB batch buffer (as a library would before
 * handing batches to a consumer). It is the native baseline that linux-obs is
 * benchmarked against, written independently of the library.
 *
 * Usage:
 *   refreader --tracepoint system:event
 *             [--pages P]            data pages per CPU ring, power of 2 (512)
 *             [--wakeup-bytes B]     wakeup watermark in bytes (65536)
 *             [--wakeup-events N]    wake up every N samples instead (1 for
 *                                    the latency reference; costly)
 *             [--duration-ms D]      stop after D ms (default: until SIGINT/
 *                                    SIGTERM)
 *             [--max-delay-ms M]     epoll timeout: rings are drained at least
 *                                    every M ms even below the watermark (1)
 *             [--latency]            per sample: CLOCK_MONOTONIC now minus the
 *                                    sample time; report p50/p99/max ns
 *             [--filter-pid PID]     ftrace filter "common_pid == PID"
 *             [--ready-file PATH]    create PATH once all events are enabled
 *             [--cpu N]              pin the reader to CPU N
 *
 * Output: ONE JSON line on stdout at the end, e.g.
 *   {"tracepoint":"syscalls:sys_enter_getppid","events":..,"lost_records":..,
 *    "lost":..,"generated":..,"user_ns":..,"sys_ns":..,"wall_ns":..,...}
 *   events       samples copied out of the rings
 *   lost_records sum of PERF_RECORD_LOST counts seen in the rings
 *   lost         sum over fds of the PERF_FORMAT_LOST value (exact)
 *   generated    sum over fds of the event count (= events + lost)
 * user/sys/wall cover the enabled phase only (not setup/teardown).
 * Extra fields: cpu_ns (CLOCK_PROCESS_CPUTIME_ID, exact; getrusage's user/sys
 * split is tick-sampled), cpu_ns_per_event, polls (epoll_wait calls), wakeups
 * (epoll_wait calls that reported a ready fd), lost_record_count, throttle/
 * unthrottle records, batches (1 MiB batches filled), straddled (samples that
 * wrapped around the ring end), invalid (samples failing a sanity check:
 * must be 0), time_back (timestamps going backwards within a ring).
 *
 * Ring discipline (see include/uapi/linux/perf_event.h, "struct
 * perf_event_mmap_page"): data_head is loaded with acquire ordering so the
 * record bytes it publishes are visible; data_tail is stored with release
 * ordering once the records are copied, so the kernel cannot overwrite bytes
 * we are still reading.
 */
#define _GNU_SOURCE
#include "common.h"

#include <signal.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#define BATCH_BYTES (1u << 20)       /* consumer batch buffer: 1 MiB */
#define LAT_CAP (8u << 20)           /* latency samples kept (reservoir) */

/* Offsets inside a PERF_RECORD_SAMPLE with our sample_type:
 * IDENTIFIER | TID | TIME | CPU | RAW, in kernel output order. */
enum {
    OFF_ID = 8,        /* u64 id        */
    OFF_PID = 16,      /* u32 pid, tid  */
    OFF_TIME = 24,     /* u64 time      */
    OFF_CPU = 32,      /* u32 cpu, res  */
    OFF_RAW_SIZE = 40, /* u32 size, then raw data */
    SAMPLE_MIN = 44,
};

struct ring {
    int fd;
    int cpu;
    void *base;                        /* mmap base (metadata page) */
    struct perf_event_mmap_page *meta;
    const unsigned char *data;         /* data area */
    uint64_t size;                     /* data area size (power of 2) */
    uint64_t last_time;                /* for the per-ring sanity check */
};

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) { (void)sig; stop_flag = 1; }

/* Global statistics. */
static struct {
    uint64_t samples, lost_records, lost_record_count, throttle, unthrottle,
        other, batches, bytes, invalid, straddled, time_back;
} st;

/* Tracepoint id: the first u16 of every raw record (common_type). */
static uint64_t tp_id;

/*
 * Cheap sanity check of a copied sample, so that a broken wrap-around copy
 * shows up as "invalid" in the output: raw size fits in the record, the
 * record's cpu is the ring's cpu and common_type is our tracepoint id.
 * Time going backwards within one ring is counted apart (time_back): it is
 * legal when an event fires from an interrupt between another event's
 * timestamp and its ring reservation.
 */
static void check_sample(struct ring *r, const unsigned char *rec, uint16_t size)
{
    uint32_t raw_size, cpu;
    uint16_t common_type;
    uint64_t t;
    if (size < SAMPLE_MIN + 2) {
        st.invalid++;
        return;
    }
    memcpy(&raw_size, rec + OFF_RAW_SIZE, 4);
    memcpy(&cpu, rec + OFF_CPU, 4);
    memcpy(&common_type, rec + SAMPLE_MIN, 2);
    memcpy(&t, rec + OFF_TIME, 8);
    if ((uint64_t)SAMPLE_MIN + raw_size > size || (int)cpu != r->cpu ||
        common_type != (uint16_t)tp_id)
        st.invalid++;
    if (t < r->last_time)
        st.time_back++;
    r->last_time = t;
}

/* The batch buffer a consumer would receive. */
static unsigned char *batch;
static size_t batch_len;

/* Latency samples (ns), reservoir-sampled beyond LAT_CAP. */
static bool want_latency;
static int64_t *lat;
static uint64_t lat_n, lat_kept;
static int64_t lat_max = INT64_MIN;
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t xorshift64(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static void lat_add(int64_t v)
{
    lat_n++;
    if (v > lat_max)
        lat_max = v;
    if (lat_kept < LAT_CAP) {
        lat[lat_kept++] = v;
    } else {
        uint64_t j = xorshift64() % lat_n;
        if (j < LAT_CAP)
            lat[j] = v;
    }
}

/* Copy len bytes at ring offset off (mod size) into dst, handling wrap. */
static void ring_copy(const struct ring *r, uint64_t off, void *dst, size_t len)
{
    uint64_t pos = off & (r->size - 1);
    uint64_t first = r->size - pos;
    if (first >= len) {
        memcpy(dst, r->data + pos, len);
    } else {
        memcpy(dst, r->data + pos, first);
        memcpy((unsigned char *)dst + first, r->data, len - first);
    }
}

/* Drain every complete record currently in the ring. */
static void drain_ring(struct ring *r)
{
    struct perf_event_mmap_page *m = r->meta;
    /* data_tail is only written by us: a plain read is fine. */
    uint64_t tail = m->data_tail;
    for (int pass = 0; pass < 4; pass++) {
        /* ACQUIRE pairs with the kernel's smp_wmb()+store of data_head:
         * record bytes below head are visible after this load. */
        uint64_t head = __atomic_load_n(&m->data_head, __ATOMIC_ACQUIRE);
        if (head == tail)
            break;
        while (tail < head) {
            struct perf_event_header hdr;
            /* Records are 8-byte aligned and the area is a multiple of 8:
             * the header itself never straddles the end. */
            ring_copy(r, tail, &hdr, sizeof(hdr));
            if (hdr.size < sizeof(hdr) || hdr.size > head - tail) {
                fprintf(stderr, "error: corrupt record on cpu %d (size %u)\n",
                        r->cpu, hdr.size);
                exit(1);
            }
            if (hdr.type == PERF_RECORD_SAMPLE) {
                if (batch_len + hdr.size > BATCH_BYTES) {
                    /* "Hand the batch to the consumer" and start a new one. */
                    st.batches++;
                    batch_len = 0;
                }
                unsigned char *rec = batch + batch_len;
                ring_copy(r, tail, rec, hdr.size);
                if ((tail & (r->size - 1)) + hdr.size > r->size)
                    st.straddled++;
                check_sample(r, rec, hdr.size);
                batch_len += hdr.size;
                st.bytes += hdr.size;
                st.samples++;
                if (want_latency && hdr.size >= SAMPLE_MIN) {
                    uint64_t t;
                    memcpy(&t, rec + OFF_TIME, sizeof(t));
                    lat_add((int64_t)(mono_ns() - t));
                }
            } else if (hdr.type == PERF_RECORD_LOST) {
                /* header, u64 id, u64 lost, sample_id */
                uint64_t body[2];
                ring_copy(r, tail + sizeof(hdr), body, sizeof(body));
                st.lost_records += body[1];
                st.lost_record_count++;
            } else if (hdr.type == PERF_RECORD_THROTTLE) {
                st.throttle++;
            } else if (hdr.type == PERF_RECORD_UNTHROTTLE) {
                st.unthrottle++;
            } else {
                st.other++;
            }
            tail += hdr.size;
        }
        /* RELEASE: our reads of the records happen before the kernel may
         * reuse the space (pairs with the kernel's smp_mb() before it
         * reads data_tail). */
        __atomic_store_n(&m->data_tail, tail, __ATOMIC_RELEASE);
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void usage(FILE *out)
{
    fputs("usage: refreader --tracepoint system:event [--pages P]\n"
          "         [--wakeup-bytes B | --wakeup-events N] [--duration-ms D]\n"
          "         [--max-delay-ms M] [--latency] [--filter-pid PID]\n"
          "         [--ready-file PATH] [--cpu N]\n"
          "Prints one JSON line: events, lost_records, lost, generated,\n"
          "user_ns, sys_ns, wall_ns (and latency with --latency).\n",
          out);
}

int main(int argc, char **argv)
{
    const char *tp = NULL, *ready_file = NULL;
    long long pages = 512, wakeup_bytes = -1, wakeup_events = -1;
    long long duration_ms = -1, max_delay_ms = 1, filter_pid = -1, pin = -1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--tracepoint") && v) {
            tp = v, i++;
        } else if (!strcmp(a, "--pages")) {
            pages = parse_num(a, v), i++;
        } else if (!strcmp(a, "--wakeup-bytes")) {
            wakeup_bytes = parse_num(a, v), i++;
        } else if (!strcmp(a, "--wakeup-events")) {
            wakeup_events = parse_num(a, v), i++;
        } else if (!strcmp(a, "--duration-ms")) {
            duration_ms = parse_num(a, v), i++;
        } else if (!strcmp(a, "--max-delay-ms")) {
            max_delay_ms = parse_num(a, v), i++;
        } else if (!strcmp(a, "--latency")) {
            want_latency = true;
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
    if (pages < 1 || (pages & (pages - 1)))
        die(0, "--pages must be a power of two", NULL);
    if (wakeup_bytes >= 0 && wakeup_events >= 0)
        die(0, "--wakeup-bytes and --wakeup-events are exclusive", NULL);
    if (wakeup_events == 0)
        die(0, "--wakeup-events must be >= 1", NULL);
    if (wakeup_bytes < 0 && wakeup_events < 0)
        wakeup_bytes = 65536;
    if (max_delay_ms > 60000)
        die(0, "--max-delay-ms too large", NULL);
    if (pin >= 0)
        pin_to_cpu((int)pin);

    batch = malloc(BATCH_BYTES);
    if (!batch)
        die(errno, "malloc", NULL);
    if (want_latency && !(lat = malloc(sizeof(*lat) * LAT_CAP)))
        die(errno, "malloc", NULL);

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: epoll_wait returns EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    const uint64_t id = tp_id = tracepoint_id(tp);
    int cpus[MAX_CPUS];
    const int ncpu = online_cpus(cpus, MAX_CPUS);
    const long page = sysconf(_SC_PAGESIZE);
    const size_t map_len = (size_t)(pages + 1) * (size_t)page;

    struct perf_event_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.type = PERF_TYPE_TRACEPOINT;
    attr.size = sizeof(attr);
    attr.config = id;
    attr.sample_period = 1;
    attr.sample_type = PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_TID |
                       PERF_SAMPLE_TIME | PERF_SAMPLE_CPU | PERF_SAMPLE_RAW;
    attr.read_format = PERF_FORMAT_ID | PERF_FORMAT_LOST;
    attr.disabled = 1;
    attr.sample_id_all = 1;
    attr.use_clockid = 1;
    attr.clockid = CLOCK_MONOTONIC;
    if (wakeup_events > 0) {
        attr.watermark = 0;
        attr.wakeup_events = (uint32_t)wakeup_events;
    } else {
        attr.watermark = 1;
        attr.wakeup_watermark = (uint32_t)wakeup_bytes;
    }
    bool have_lost_fmt = true;

    struct ring *rings = calloc((size_t)ncpu, sizeof(*rings));
    int nr = 0;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!rings || ep < 0)
        die(errno, "setup", NULL);

    for (int i = 0; i < ncpu; i++) {
        int fd = perf_event_open(&attr, -1, cpus[i], -1, PERF_FLAG_FD_CLOEXEC);
        if (fd < 0 && errno == EINVAL && have_lost_fmt) {
            /* PERF_FORMAT_LOST needs kernel 6.0+. */
            have_lost_fmt = false;
            attr.read_format = PERF_FORMAT_ID;
            fd = perf_event_open(&attr, -1, cpus[i], -1, PERF_FLAG_FD_CLOEXEC);
        }
        if (fd < 0 && errno == ENODEV)
            continue; /* CPU went offline meanwhile */
        if (fd < 0)
            die(errno, "perf_event_open(%s)", tp);
        if (filter_pid >= 0) {
            char filter[64];
            snprintf(filter, sizeof(filter), "common_pid == %lld", filter_pid);
            if (ioctl(fd, PERF_EVENT_IOC_SET_FILTER, filter) != 0)
                die(errno, "PERF_EVENT_IOC_SET_FILTER '%s'", filter);
        }
        void *base = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (base == MAP_FAILED)
            die(errno, "mmap ring", NULL);
        struct ring *r = &rings[nr];
        r->fd = fd;
        r->cpu = cpus[i];
        r->base = base;
        r->meta = base;
        /* data_offset/data_size exist since 4.1; fall back to the classic
         * layout (data starts one page in) if they read as zero. */
        r->data = (const unsigned char *)base +
                  (r->meta->data_offset ? r->meta->data_offset : (uint64_t)page);
        r->size = r->meta->data_size ? r->meta->data_size
                                     : (uint64_t)pages * (uint64_t)page;
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)nr };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
            die(errno, "epoll_ctl", NULL);
        nr++;
    }
    if (nr == 0)
        die(0, "no online CPU could be opened", NULL);

    for (int i = 0; i < nr; i++)
        if (ioctl(rings[i].fd, PERF_EVENT_IOC_ENABLE, 0) != 0)
            die(errno, "PERF_EVENT_IOC_ENABLE", NULL);

    uint64_t u0, s0;
    rusage_ns(RUSAGE_SELF, &u0, &s0);
    const uint64_t c0 = cputime_ns();
    const uint64_t t0 = mono_ns();
    const uint64_t deadline =
        duration_ms >= 0 ? t0 + (uint64_t)duration_ms * 1000000u : UINT64_MAX;
    if (ready_file)
        touch_file(ready_file);

    uint64_t polls = 0, wakeups = 0;
    struct epoll_event evs[64];
    while (!stop_flag) {
        uint64_t now = mono_ns();
        if (now >= deadline)
            break;
        long long timeout = max_delay_ms;
        if (deadline != UINT64_MAX) {
            long long left = (long long)((deadline - now + 999999) / 1000000);
            if (left < timeout)
                timeout = left;
        }
        int n = epoll_wait(ep, evs, 64, (int)timeout);
        polls++;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die(errno, "epoll_wait", NULL);
        }
        if (n > 0)
            wakeups++;
        /* Timed drain: every ring, whether it signalled or not, so data
         * below the watermark is delivered within max_delay_ms. */
        for (int i = 0; i < nr; i++)
            drain_ring(&rings[i]);
    }

    /* Stop generation, then collect what is left. */
    for (int i = 0; i < nr; i++)
        ioctl(rings[i].fd, PERF_EVENT_IOC_DISABLE, 0);
    for (int i = 0; i < nr; i++)
        drain_ring(&rings[i]);
    const uint64_t wall = mono_ns() - t0;
    uint64_t u1, s1;
    rusage_ns(RUSAGE_SELF, &u1, &s1);
    const uint64_t c1 = cputime_ns();
    if (batch_len)
        st.batches++;

    uint64_t generated = 0, lost = 0;
    for (int i = 0; i < nr; i++) {
        uint64_t vals[3] = { 0, 0, 0 }; /* value, id, lost */
        size_t want = (have_lost_fmt ? 3 : 2) * sizeof(uint64_t);
        ssize_t got = read(rings[i].fd, vals, want);
        if (got != (ssize_t)want)
            die(got < 0 ? errno : 0, "read(perf fd)", NULL);
        generated += vals[0];
        lost += vals[2];
    }

    const uint64_t user = u1 - u0, sys = s1 - s0;
    printf("{\"tracepoint\":\"%s\",\"events\":%llu,\"lost_records\":%llu,",
           tp, (unsigned long long)st.samples,
           (unsigned long long)st.lost_records);
    if (have_lost_fmt)
        printf("\"lost\":%llu,", (unsigned long long)lost);
    else
        printf("\"lost\":null,");
    printf("\"generated\":%llu,\"user_ns\":%llu,\"sys_ns\":%llu,\"wall_ns\":%llu,"
           "\"cpu_ns_per_event\":%.1f,\"events_per_s\":%.0f,\"cpus\":%d,"
           "\"pages\":%lld,\"wakeup_%s\":%lld,\"max_delay_ms\":%lld,"
           "\"polls\":%llu,\"wakeups\":%llu,\"lost_record_count\":%llu,"
           "\"throttle\":%llu,\"unthrottle\":%llu,\"other_records\":%llu,"
           "\"batches\":%llu,\"bytes\":%llu,\"straddled\":%llu,"
           "\"invalid\":%llu,\"time_back\":%llu,\"cpu_ns\":%llu",
           (unsigned long long)generated, (unsigned long long)user,
           (unsigned long long)sys, (unsigned long long)wall,
           st.samples ? (double)(user + sys) / (double)st.samples : 0.0,
           wall ? (double)st.samples * 1e9 / (double)wall : 0.0, nr, pages,
           wakeup_events > 0 ? "events" : "bytes",
           wakeup_events > 0 ? wakeup_events : wakeup_bytes, max_delay_ms,
           (unsigned long long)polls, (unsigned long long)wakeups,
           (unsigned long long)st.lost_record_count,
           (unsigned long long)st.throttle, (unsigned long long)st.unthrottle,
           (unsigned long long)st.other, (unsigned long long)st.batches,
           (unsigned long long)st.bytes, (unsigned long long)st.straddled,
           (unsigned long long)st.invalid, (unsigned long long)st.time_back,
           (unsigned long long)(c1 - c0));
    if (want_latency) {
        int64_t p50 = 0, p99 = 0;
        if (lat_kept) {
            qsort(lat, lat_kept, sizeof(*lat), cmp_i64);
            p50 = lat[(lat_kept - 1) * 50 / 100];
            p99 = lat[(lat_kept - 1) * 99 / 100];
        }
        printf(",\"latency\":{\"p50\":%lld,\"p99\":%lld,\"max\":%lld,\"n\":%llu}",
               (long long)p50, (long long)p99,
               (long long)(lat_n ? lat_max : 0), (unsigned long long)lat_n);
    }
    printf("}\n");
    fflush(stdout);

    /* Teardown (each close may wait for an RCU grace period). */
    for (int i = 0; i < nr; i++) {
        munmap(rings[i].base, map_len);
        close(rings[i].fd);
    }
    close(ep);
    free(rings);
    free(batch);
    free(lat);
    return 0;
}
