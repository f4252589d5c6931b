//! Writes the seed corpora under `fuzz/corpus/<target>/`:
//!
//! - `format_parse`: every `fixtures/kernel/**/*.format` and `fixtures/formats/*.format`;
//! - `decode`: each of those formats with a well-formed record built for it
//!   ([`linux_obs_core_fuzz::build_record`]), plus a few broken records;
//! - `ring`, `batch`: hand-made inputs in the layouts documented in `src/lib.rs`.
//!
//! `cargo run --manifest-path crates/linux-obs-core/fuzz/Cargo.toml --example gen_corpus [DIR]`
//! writes them under DIR (default: `fuzz/corpus`), named after their origin. The committed
//! corpus is these seeds plus what the fuzzers found, minimised with `cargo fuzz cmin`
//! (which renames files to their SHA-1 and drops most of the 828 kernel formats, redundant
//! for coverage); the hand-made `ring`, `batch` and `decode` seeds are kept by name.

use linux_obs_core::Format;
use linux_obs_core_fuzz::{build_record, decode_input, lost_record, sample_record, IDS};
use std::fs;
use std::path::{Path, PathBuf};

fn formats(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            formats(&p, out);
        } else if p.extension().is_some_and(|e| e == "format") {
            out.push(p);
        }
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::write(dir.join(name), bytes).unwrap();
}

/// A perf_event_header + body of 8-byte words.
fn rec(ty: u32, size: u16, words: &[u64]) -> Vec<u8> {
    let mut r = ty.to_ne_bytes().to_vec();
    r.extend_from_slice(&0u16.to_ne_bytes());
    r.extend_from_slice(&size.to_ne_bytes());
    for w in words {
        r.extend_from_slice(&w.to_ne_bytes());
    }
    r
}

/// A `ring` input: see `fuzz_ring` for the layout.
fn ring_input(
    log2: u8,
    geometry: &[u8],
    positions: &[u8],
    drains: &[(u8, u16, u16)],
    data: &[u8],
) -> Vec<u8> {
    let mut v = vec![log2];
    v.extend_from_slice(geometry);
    v.extend_from_slice(positions);
    v.push(drains.len() as u8 - 1);
    for &(sel, budget, advance) in drains {
        v.push(sel);
        v.extend_from_slice(&budget.to_le_bytes());
        v.extend_from_slice(&advance.to_le_bytes());
    }
    v.extend_from_slice(data);
    v
}

fn pos_small(tail: u16, used: u16) -> Vec<u8> {
    let mut v = vec![1];
    v.extend_from_slice(&tail.to_le_bytes());
    v.extend_from_slice(&used.to_le_bytes());
    v
}

fn main() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixtures = fuzz.join("../../../fixtures");
    let corpus = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| fuzz.join("corpus"));
    for t in ["format_parse", "decode", "ring", "batch"] {
        fs::create_dir_all(corpus.join(t)).unwrap();
    }

    // format_parse + decode
    let mut files = Vec::new();
    formats(&fixtures.join("kernel"), &mut files);
    formats(&fixtures.join("formats"), &mut files);
    let mut seen = std::collections::HashSet::new();
    let (mut n_parse, mut n_decode) = (0, 0);
    for path in &files {
        let text = fs::read_to_string(path).unwrap();
        if !seen.insert(text.clone()) {
            continue;
        }
        let rel = path.strip_prefix(&fixtures).unwrap().with_extension("");
        let name = rel.to_string_lossy().replace('/', "__");
        write(&corpus.join("format_parse"), &name, text.as_bytes());
        n_parse += 1;
        if let Ok(fmt) = Format::parse(&text) {
            if let Some(record) = build_record(&fmt, b"") {
                write(&corpus.join("decode"), &name, &decode_input(&text, &record));
                n_decode += 1;
            }
        }
    }
    // decode: broken records for a format with every dynamic kind.
    let exec =
        fs::read_to_string(fixtures.join("formats/sched_sched_process_exec.format")).unwrap();
    let exec_fmt = Format::parse(&exec).unwrap();
    let good = build_record(&exec_fmt, b"/bin/true").unwrap();
    let mut past_end = good.clone();
    past_end[8..12].copy_from_slice(&(20u32 | (500 << 16)).to_ne_bytes());
    write(
        &corpus.join("decode"),
        "exec_loc_past_end",
        &decode_input(&exec, &past_end),
    );
    write(
        &corpus.join("decode"),
        "exec_truncated",
        &decode_input(&exec, &good[..10]),
    );
    let kinds = linux_obs_core_fuzz::KINDS_FORMAT;
    let kinds_fmt = Format::parse(kinds).unwrap();
    write(&corpus.join("format_parse"), "all_kinds", kinds.as_bytes());
    let rec_kinds = build_record(&kinds_fmt, b"payload\xff\xfe").unwrap();
    write(
        &corpus.join("decode"),
        "all_kinds",
        &decode_input(kinds, &rec_kinds),
    );
    n_decode += 3;

    // ring
    let r = |n: &str, v: Vec<u8>| write(&corpus.join("ring"), n, &v);
    let kernel = [0u8];
    let mut three = rec(9, 16, &[1]);
    three.extend(rec(9, 24, &[2, 20]));
    three.extend(rec(2, 32, &[3, 30, 300]));
    r(
        "three_records",
        ring_input(9, &kernel, &pos_small(0, 72), &[(0, 0, 0)], &three),
    );
    // A 56-byte record 24 bytes before the end of a 256-byte ring: reassembled.
    let wrap = rec(9, 56, &[7, 700, 701, 702, 703, 704]);
    r(
        "straddles_end",
        ring_input(
            8,
            &kernel,
            &pos_small(10 * 256 + 232, 56),
            &[(0, 0, 0)],
            &wrap,
        ),
    );
    // Header torn across the end: 4 bytes before, 4 after.
    let torn = rec(9, 16, &[5]);
    r(
        "torn_header",
        ring_input(
            7,
            &kernel,
            &pos_small(3 * 128 + 124, 16),
            &[(0, 0, 0)],
            &torn,
        ),
    );
    // A torn header whose size is not published yet.
    r(
        "torn_header_unpublished",
        ring_input(
            7,
            &kernel,
            &pos_small(3 * 128 + 124, 4),
            &[(0, 0, 0)],
            &torn,
        ),
    );
    for (name, size) in [
        ("size_0", 0u16),
        ("size_4", 4),
        ("size_12", 12),
        ("size_larger_than_ring", 4096),
    ] {
        let mut v = rec(9, 16, &[1]);
        v.extend(rec(9, size, &[0]));
        v.extend(rec(9, 16, &[2]));
        r(
            name,
            ring_input(9, &kernel, &pos_small(0, 48), &[(0, 0, 0), (0, 0, 0)], &v),
        );
    }
    let mut behind = vec![2u8];
    behind.extend_from_slice(&1000u64.to_le_bytes());
    behind.extend_from_slice(&900u64.to_le_bytes());
    r(
        "head_behind_tail",
        ring_input(9, &kernel, &behind, &[(0, 0, 0), (0, 0, 0)], &three),
    );
    let mut ahead = vec![2u8];
    ahead.extend_from_slice(&900u64.to_le_bytes());
    ahead.extend_from_slice(&(900u64 + 513).to_le_bytes());
    r(
        "head_a_ring_ahead",
        ring_input(9, &kernel, &ahead, &[(0, 0, 0)], &three),
    );
    r(
        "legacy_geometry",
        ring_input(9, &[1], &pos_small(0, 72), &[(0, 0, 0)], &three),
    );
    r(
        "page_2048",
        ring_input(6, &[2], &pos_small(40, 72), &[(0, 0, 0)], &three),
    );
    let mut arbitrary = vec![3u8];
    arbitrary.extend_from_slice(&4096u16.to_le_bytes()); // page
    arbitrary.extend_from_slice(&(4096u16 - 1056 + 256).to_le_bytes()); // len = 4096 + 256
    arbitrary.extend_from_slice(&4096u16.to_le_bytes()); // data_offset
    arbitrary.extend_from_slice(&[0, 8]); // data_size = 1 << 8
    r(
        "arbitrary_geometry",
        ring_input(0, &arbitrary, &pos_small(0, 72), &[(0, 0, 0)], &three),
    );
    // Budgets: one record at a time, then the kernel publishes more.
    r(
        "budgets_and_advances",
        ring_input(
            9,
            &kernel,
            &pos_small(8, 16),
            &[(3, 0, 0), (3, 0, 24), (7, 30, 32), (1, 0, 0), (0, 0, 0)],
            &three,
        ),
    );
    r(
        "ring_of_8_bytes",
        ring_input(
            3,
            &kernel,
            &pos_small(5, 8),
            &[(0, 0, 0), (0, 0, 8)],
            &rec(9, 8, &[]),
        ),
    );

    // batch
    let b = |n: &str, v: Vec<u8>| write(&corpus.join("batch"), n, &v);
    let mut with_formats = vec![1u8];
    with_formats.extend_from_slice(&3u32.to_le_bytes()); // ring cpu
    with_formats.extend([2, 0, 16]);
    with_formats.extend_from_slice(b"/usr/bin/env\0abc");
    with_formats.extend([2, 1, 8]);
    with_formats.extend_from_slice(b"swapper/");
    // op 3: lost
    with_formats.push(3);
    with_formats.extend_from_slice(&IDS[0].to_le_bytes());
    with_formats.extend_from_slice(&42u64.to_le_bytes());
    with_formats.extend_from_slice(&999u64.to_le_bytes());
    with_formats.extend_from_slice(&1u32.to_le_bytes());
    with_formats.push(3);
    // op 2: a kinds record; op 1: a sample of source 3 (no format)
    with_formats.extend([2, 2, 6]);
    with_formats.extend_from_slice(b"kinds\xff");
    with_formats.extend([1, 3]);
    for v in [7u32, 8] {
        with_formats.extend_from_slice(&v.to_le_bytes());
    }
    with_formats.extend_from_slice(&12345u64.to_le_bytes());
    with_formats.extend_from_slice(&1u32.to_le_bytes());
    with_formats.push(5);
    with_formats.extend_from_slice(b"hello");
    with_formats.push(0);
    b("formats_samples_lost", with_formats);

    let mut raw_records = vec![0u8, 0, 0, 0, 0];
    for r in [
        sample_record(IDS[1], 1, 1, 1, 0, b"abcdefgh"),
        sample_record(999, 1, 1, 1, 0, b"unknown id"),
        lost_record(IDS[0], 7, 5, 1, 56),
        lost_record(IDS[0], 7, 5, 1, 24),
        rec(14, 16, &[1]), // PERF_RECORD_THROTTLE: ignored
        vec![9, 0, 0, 0, 0, 0, 16, 0],
    ] {
        raw_records.push(0);
        raw_records.push(r.len() as u8);
        raw_records.extend_from_slice(&r);
    }
    b("raw_records", raw_records);

    let mut tweaks = vec![2u8];
    tweaks.extend_from_slice(&555u64.to_le_bytes());
    tweaks.extend_from_slice(&9u32.to_le_bytes()); // id 555 -> source 9
    tweaks.extend_from_slice(&0u32.to_le_bytes());
    for (tweak, arg) in [(1u8, 1000u32), (2, 30), (0, 0)] {
        tweaks.extend([1, 9]); // sample, explicit id
        tweaks.extend_from_slice(&555u64.to_le_bytes());
        tweaks.extend_from_slice(&[1; 20]);
        tweaks.push(3);
        tweaks.extend_from_slice(b"xyz");
        tweaks.push(tweak);
        match tweak {
            1 => tweaks.extend_from_slice(&arg.to_le_bytes()),
            2 => tweaks.push(arg as u8),
            _ => {}
        }
    }
    tweaks.push(4);
    tweaks.extend_from_slice(&14u32.to_le_bytes());
    tweaks.push(4);
    tweaks.extend_from_slice(&[0, 0, 16, 0]);
    b("tweaked_samples", tweaks);

    println!("format_parse: {n_parse} seeds, decode: {n_decode} seeds, ring and batch: hand-made");
}
