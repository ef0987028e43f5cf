//! Digest speed: glint's transfer digests (GnuTLS with the default `gnutls` feature, the
//! RustCrypto crates without it) against the RustCrypto crates called directly, over the same
//! 256 MiB in 1 MiB updates (a transfer's chunk size order), 3 runs each, median.
//!
//! `scripts/bench digests` prints MB/s per algorithm and the ratio; run it again with
//! `--no-default-features` (passed through to cargo by scripts/bench) to see the fallback
//! measured against itself.

use std::time::Instant;

use glint::crd::HashAlgorithm;
use glint::transfer::Digest;
use sha2::Digest as _;

const TOTAL: usize = 256 * 1024 * 1024;
const UPDATE: usize = 1024 * 1024;
const RUNS: usize = 3;

fn data() -> Vec<u8> {
    // xorshift: incompressible enough, and the same bytes every run.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut out = Vec::with_capacity(TOTAL);
    while out.len() < TOTAL {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out
}

fn rust_crate(algorithm: HashAlgorithm, data: &[u8]) -> String {
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    match algorithm {
        HashAlgorithm::Md5 => {
            let mut hash = md5::Md5::new();
            data.chunks(UPDATE).for_each(|chunk| hash.update(chunk));
            hex(&hash.finalize())
        }
        HashAlgorithm::Sha1 => {
            let mut hash = sha1_smol::Sha1::new();
            data.chunks(UPDATE).for_each(|chunk| hash.update(chunk));
            hash.digest().to_string()
        }
        HashAlgorithm::Sha256 => {
            let mut hash = sha2::Sha256::new();
            data.chunks(UPDATE).for_each(|chunk| hash.update(chunk));
            hex(&hash.finalize())
        }
        HashAlgorithm::Sha512 => {
            let mut hash = sha2::Sha512::new();
            data.chunks(UPDATE).for_each(|chunk| hash.update(chunk));
            hex(&hash.finalize())
        }
    }
}

fn glints(algorithm: HashAlgorithm, data: &[u8]) -> String {
    let mut digest = Digest::new(algorithm);
    data.chunks(UPDATE).for_each(|chunk| digest.update(chunk));
    digest.hex().unwrap_or_else(|err| panic!("{err}"))
}

/// Median MB/s of `RUNS` runs, and the digest (the two sides must agree).
fn measure(run: impl Fn() -> String) -> (f64, String) {
    let mut rates = Vec::new();
    let mut digest = String::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        digest = run();
        rates.push(TOTAL as f64 / 1e6 / started.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    (rates[RUNS / 2], digest)
}

fn main() {
    let backend = if cfg!(feature = "gnutls") {
        "GnuTLS"
    } else {
        "RustCrypto"
    };
    let data = data();
    println!(
        "digests over {} MiB in {} KiB updates, median of {RUNS} runs; glint's backend: {backend}",
        TOTAL >> 20,
        UPDATE >> 10
    );
    println!(
        "{:<8} {:>12} {:>16} {:>7}",
        "digest", "glint MB/s", "RustCrypto MB/s", "ratio"
    );
    for algorithm in [
        HashAlgorithm::Sha512,
        HashAlgorithm::Sha256,
        HashAlgorithm::Md5,
        HashAlgorithm::Sha1,
    ] {
        let (ours, our_digest) = measure(|| glints(algorithm, &data));
        let (theirs, their_digest) = measure(|| rust_crate(algorithm, &data));
        assert_eq!(
            our_digest, their_digest,
            "the two {algorithm:?} digests differ"
        );
        println!(
            "{:<8} {ours:>12.0} {theirs:>16.0} {:>7.2}",
            format!("{algorithm:?}").to_lowercase(),
            ours / theirs
        );
    }
}
