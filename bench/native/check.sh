#!/bin/sh
# check.sh - bounded verification runs of the native tools (needs root).
#   make -C bench/native && sh bench/native/check.sh
# Load on CPU 0, counter and refreader pinned to CPU 1; each scenario ~3 s.
#
# Part 1 (exactness): loadgen starts with --delay-ms 600; counter and
# refreader attach meanwhile (for getppid, filtered on loadgen's pid with
# --filter-pid, so nothing else is counted). Checks:
#   refreader: events + lost == generated, invalid == 0
#   getppid:   counter == generated == loadgen calls
#   exec:      no pid filter (children have new pids): counter is shown only.
# Part 2 (cost): loadgen flat alone, with counter only, with refreader only.
set -u
cd "$(dirname "$0")"
B=build
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
GP=syscalls:sys_enter_getppid
EX=sched:sched_process_exec

wait_ready() { # files...
    i=0
    for f in "$@"; do
        while [ ! -e "$f" ]; do
            i=$((i + 1)); [ $i -gt 200 ] && { echo "reader not ready"; return 1; }
            sleep 0.02
        done
    done
}

# exact NAME TRACEPOINT FILTER(yes|no) "refreader args" "loadgen args"
exact() {
    name=$1 tp=$2 filter=$3 rargs=$4 largs=$5
    rm -f "$TMP"/*
    echo "== $name"
    # shellcheck disable=SC2086
    $B/loadgen $largs --cpu 0 --duration-ms 2000 --delay-ms 600 >"$TMP/load.json" &
    lpid=$!
    f=""; [ "$filter" = yes ] && f="--filter-pid $lpid"
    # shellcheck disable=SC2086
    timeout 20 $B/counter --cpu 1 --tracepoint "$tp" $f --ready-file "$TMP/c" \
        --duration-ms 3200 >"$TMP/counter.json" &
    cpid=$!
    # shellcheck disable=SC2086
    timeout 20 $B/refreader --cpu 1 --tracepoint "$tp" $f --ready-file "$TMP/r" \
        --duration-ms 3000 $rargs >"$TMP/reader.json" &
    rpid=$!
    wait_ready "$TMP/r" "$TMP/c"
    wait $lpid; wait $rpid; wait $cpid
    cat "$TMP/load.json" "$TMP/reader.json" "$TMP/counter.json"
    node -e '
      const fs = require("fs");
      const [l, r, c] = process.argv.slice(1, 4).map(f => JSON.parse(fs.readFileSync(f)));
      const filtered = process.argv[4] === "yes";
      let ok = r.events + r.lost === r.generated && r.invalid === 0;
      if (filtered) ok = ok && c.count === r.generated && r.generated === l.calls;
      console.log((ok ? "ok" : "FAIL") +
        ` loadgen=${l.calls} events=${r.events} lost=${r.lost}` +
        ` generated=${r.generated} counter=${c.count}` +
        ` lost_records=${r.lost_records} straddled=${r.straddled}`);
    ' "$TMP/load.json" "$TMP/reader.json" "$TMP/counter.json" "$filter"
}

# cost NAME "reader command or empty"
cost() {
    name=$1 reader=$2
    rm -f "$TMP"/*
    echo "== cost: $name"
    if [ -n "$reader" ]; then
        # shellcheck disable=SC2086
        timeout 20 $reader --cpu 1 --tracepoint $GP --ready-file "$TMP/r" \
            --duration-ms 2600 >"$TMP/reader.json" &
        rpid=$!
        wait_ready "$TMP/r"
    fi
    $B/loadgen flat --cpu 0 --duration-ms 2000
    if [ -n "$reader" ]; then wait $rpid; cat "$TMP/reader.json"; fi
}

exact "getppid 100k/s, default ring" $GP yes "" "rate --rate 100000"
exact "getppid 1M/s, default ring" $GP yes "" "rate --rate 1000000"
exact "getppid flat (max rate), default ring" $GP yes "" "flat"
exact "getppid flat, 8-page ring, 50 ms drain (forced loss)" $GP yes \
    "--pages 8 --max-delay-ms 50" "flat"
exact "exec max rate, 1-page ring (80-byte records straddle the end)" $EX no \
    "--pages 1" "maxexec"
exact "exec 1000/s, latency, wakeup-events 1" $EX no \
    "--wakeup-events 1 --latency --max-delay-ms 1000" "exec --rate 1000"
exact "exec 1000/s, latency, watermark 64 KiB + 1 ms timed drain" $EX no \
    "--latency" "exec --rate 1000"

cost "no reader" ""
cost "counter only" "$B/counter"
cost "refreader only" "$B/refreader"
