//! The fuzz targets of `fuzz/` as plain tests, so `cargo test` exercises
//! them on every run without a nightly compiler: each target over its
//! checked-in corpus (`fuzz/corpus/<target>/`), every kept crash input
//! (`fuzz/regressions/<target>/`), and a bounded loop of random mutations
//! (`LEASEHOLD_FUZZ_ITERS`, default 3000 per target; seed
//! `LEASEHOLD_FUZZ_SEED`). A failing input is written to
//! `target/fuzz-failures/` for keeping as a regression.

#[path = "../../fuzz/src/targets.rs"]
#[allow(dead_code)]
mod targets;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn inputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().is_file())
                .map(|e| {
                    (
                        e.path().display().to_string(),
                        std::fs::read(e.path()).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Tokens that break parsers and renderers.
const TOKENS: &[&[u8]] = &[
    b"\n",
    b"\r\n",
    b"\0",
    b"../",
    b"/",
    b",",
    b"\"",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b"null",
    b"true",
    b"1e999",
    b"-1",
    b"18446744073709551616",
    b"\\u0000",
    b"\\ud800",
    b"\xff\xfe",
    b"\n[DEFAULT]\n",
    b"\ndhcp-script=/bin/sh\n",
    b"set:",
    b"tag:",
    b"%",
    b"$state_path",
    b"fa:16:3e:00:00:01",
    b"198.51.100.1",
    b"2001:db8::1",
    b"\"\":\"\"",
];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = if seeds.is_empty() {
        Vec::new()
    } else {
        seeds[rng.below(seeds.len())].clone()
    };
    for _ in 0..=rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(6) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let end = (at + rng.below(16)).min(data.len());
                data.drain(at.min(end)..end);
            }
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                data.splice(at..at, t.iter().copied());
            }
            3 if !seeds.is_empty() => {
                // Splice a piece of another input.
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                let to = (from + rng.below(64)).min(other.len());
                data.splice(at..at, other[from..to].iter().copied());
            }
            4 => {
                let byte = rng.next() as u8;
                data.insert(at, byte);
            }
            _ => {
                // Repeat a slice: long strings and deep nesting.
                let end = (at + 1 + rng.below(8)).min(data.len());
                if at < end {
                    let piece: Vec<u8> = data[at..end].to_vec();
                    for _ in 0..rng.below(200) {
                        data.splice(at..at, piece.iter().copied());
                    }
                }
            }
        }
    }
    data
}

fn save_failure(target: &str, data: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-failures");
    let _ = std::fs::create_dir_all(&dir);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
    }
    let path = dir.join(format!("{target}-{h:016x}"));
    let _ = std::fs::write(&path, data);
    path
}

fn run(target: &str, body: fn(&[u8]), data: &[u8], what: &str) {
    if catch_unwind(AssertUnwindSafe(|| body(data))).is_err() {
        let saved = save_failure(target, data);
        panic!(
            "fuzz target {target} failed on {what}; input saved to {} (keep it under fuzz/regressions/{target}/)",
            saved.display()
        );
    }
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn check_target(target: &str) {
    let body = targets::TARGETS
        .iter()
        .find(|(n, _)| *n == target)
        .map(|(_, b)| *b)
        .expect("target");
    let corpus = inputs(&fuzz_dir().join("corpus").join(target));
    assert!(!corpus.is_empty(), "no corpus for {target}");
    for (name, data) in &corpus {
        run(target, body, data, name);
    }
    for (name, data) in inputs(&fuzz_dir().join("regressions").join(target)) {
        run(target, body, &data, &name);
    }
    let seeds: Vec<Vec<u8>> = corpus.into_iter().map(|(_, d)| d).collect();
    let mut rng = Rng(env_num("LEASEHOLD_FUZZ_SEED", 0x1ea5_e401d) | 1);
    for i in 0..env_num("LEASEHOLD_FUZZ_ITERS", 3000) {
        let data = mutate(&mut rng, &seeds);
        run(target, body, &data, &format!("random input {i}"));
    }
}

#[test]
fn fuzz_envelope() {
    check_target("envelope");
}

#[test]
fn fuzz_notification() {
    check_target("notification");
}

#[test]
fn fuzz_model() {
    check_target("model");
}

#[test]
fn fuzz_ini() {
    check_target("ini");
}

#[test]
fn fuzz_render() {
    check_target("render");
}
