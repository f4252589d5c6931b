#!/bin/sh
# check.sh - bounded verification runs of the native tools (root needed).
# Load on CPU 0, readers on CPU 1. Each scenario takes ~3 s.
#   sh bench/native/check.sh            (after: make -C bench/native)
# Prints, per scenario, the JSON lines of loadgen, refreader and counter,
# then an "ok"/"FAIL" line for the exactness checks
# (events + lost == generated, counter == generated).
set -u
cd "$(dirname "$0")"
B=build
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# run NAME TRACEPOINT "refreader args" "loadgen args"
run() {
    name=$1 tp=$2 rargs=$3 largs=$4
    rm -f "$TMP/r" "$TMP/c"
    echo "== $name"
    timeout 20 taskset -c 1 $B/counter --tracepoint "$tp" --ready-file "$TMP/c" \
        --duration-ms 3600 >"$TMP/counter.json" &
    cpid=$!
    # shellcheck disable=SC2086
    timeout 20 taskset -c 1 $B/refreader --tracepoint "$tp" --ready-file "$TMP/r" \
        --duration-ms 3500 $rargs >"$TMP/reader.json" &
    rpid=$!
    i=0
    while [ ! -e "$TMP/r" ] || [ ! -e "$TMP/c" ]; do
        i=$((i + 1)); [ $i -gt 250 ] && { echo "reader not ready"; break; }
        sleep 0.02
    done
    # shellcheck disable=SC2086
    timeout 20 $B/loadgen $largs --cpu 0 --duration-ms 2000 --delay-ms 100
    wait $rpid; wait $cpid
    cat "$TMP/reader.json" "$TMP/counter.json"
    node -e '
      const fs = require("fs");
      const r = JSON.parse(fs.readFileSync(process.argv[1]));
      const c = JSON.parse(fs.readFileSync(process.argv[2]));
      const ok1 = r.events + r.lost === r.generated;
      const ok2 = c.count === r.generated;
      console.log((ok1 && ok2 ? "ok" : "FAIL") +
        ` events+lost=${r.events + r.lost} generated=${r.generated}` +
        ` counter=${c.count} lost=${r.lost} lost_records=${r.lost_records}`);
    ' "$TMP/reader.json" "$TMP/counter.json"
}

GP=syscalls:sys_enter_getppid
EX=sched:sched_process_exec
run "getppid 100k/s, default ring" $GP "" "rate --rate 100000"
run "getppid 1M/s, default ring" $GP "" "rate --rate 1000000"
run "getppid flat (max rate), default ring" $GP "" "flat"
run "getppid flat, 8-page ring, 50 ms drain (forced loss)" $GP \
    "--pages 8 --max-delay-ms 50" "flat"
run "exec 1000/s, latency, wakeup-events 1" $EX \
    "--wakeup-events 1 --latency --max-delay-ms 1000" "exec --rate 1000"
run "exec 1000/s, latency, watermark 64 KiB + 1 ms timed drain" $EX \
    "--latency" "exec --rate 1000"
