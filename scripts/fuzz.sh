#!/usr/bin/env bash
# Fuzz linux-obs-core with cargo-fuzz (libFuzzer).
#
#   scripts/fuzz.sh [seconds] [target...]
#
# Runs each target (default: format_parse decode ring batch) for `seconds` (default 600), one
# after the other, as a single libFuzzer job, then prints each run's final stats line. Installs
# cargo-fuzz if it is missing. The crate is crates/linux-obs-core/fuzz (its own workspace).
#
# - Toolchain: nightly with AddressSanitizer when `cargo +nightly` works, else stable with
#   `-s none` (libFuzzer without a sanitizer). Force with FUZZ_TOOLCHAIN=stable|nightly and
#   FUZZ_SANITIZER=address|none|memory|thread.
# - Debug assertions and overflow checks are on (`-a`): an arithmetic overflow is a crash.
# - Seeds come from fuzz/corpus/<target>/ (committed; regenerate with
#   `cargo run --manifest-path crates/linux-obs-core/fuzz/Cargo.toml --example gen_corpus`);
#   new inputs go to fuzz/target/corpus/<target>/ (kept between runs, not committed).
#   MERGE=1 folds the inputs that add coverage into the committed corpus afterwards.
# - SKIP_KNOWN_BUGS=1 builds with the `skip-known-bugs` feature: the targets step around the
#   bugs listed in KNOWN_BUGS (fuzz/src/lib.rs) so a long run is not stopped by them.
# - Crashes are written to fuzz/artifacts/<target>/ and logs to fuzz/artifacts/<target>.log;
#   reproduce with `cargo fuzz run -a <target> <file>` from crates/linux-obs-core, minimise with
#   `cargo fuzz tmin -a <target> <file>`, then add a test to tests/fuzz_regressions.rs.
#
# Exit status: 0 if no target crashed or hung, 1 otherwise. Not part of CI or `npm test`.
set -euo pipefail

seconds="${1:-600}"
shift || true
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(format_parse decode ring batch)

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
core="$root/crates/linux-obs-core"
fuzz="$core/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

toolchain="${FUZZ_TOOLCHAIN:-}"
if [ -z "$toolchain" ]; then
  if cargo +nightly --version >/dev/null 2>&1; then toolchain=nightly; else toolchain=stable; fi
fi
if [ "$toolchain" = nightly ]; then
  sanitizer="${FUZZ_SANITIZER:-address}"
else
  sanitizer="${FUZZ_SANITIZER:-none}"
fi
features=()
[ "${SKIP_KNOWN_BUGS:-0}" = 1 ] && features=(--features skip-known-bugs)

max_len() {
  case "$1" in
    format_parse | decode) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

cd "$core"
echo "fuzz.sh: ${seconds}s per target, toolchain $toolchain, sanitizer $sanitizer, targets ${targets[*]}" >&2
status=0
summary=()
for t in "${targets[@]}"; do
  work="$fuzz/target/corpus/$t"
  mkdir -p "$work" "$fuzz/artifacts/$t"
  log="$fuzz/artifacts/$t.log"
  echo "fuzz.sh: $t for ${seconds}s (log: $log)" >&2
  rc=0
  cargo "+$toolchain" fuzz run -a -O -s "$sanitizer" "${features[@]}" "$t" "$work" "$fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$(max_len "$t")" \
    -print_final_stats=1 >"$log" 2>&1 || rc=$?
  stats="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)"
  [ -n "$stats" ] || stats="$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)"
  if [ "$rc" -ne 0 ]; then
    status=1
    crash="$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -n 1 | sed 's/Test unit written to //' || true)"
    summary+=("$t: FAILED (exit $rc) ${crash:-see $log} | last: $stats")
  else
    summary+=("$t: $stats")
  fi
  if [ "${MERGE:-0}" = 1 ]; then
    cargo "+$toolchain" fuzz run -a -O -s "$sanitizer" "${features[@]}" "$t" "$fuzz/corpus/$t" "$work" -- \
      -merge=1 -max_len="$(max_len "$t")" >>"$log" 2>&1 || true
  fi
done
printf '%s\n' "${summary[@]}"
exit "$status"
