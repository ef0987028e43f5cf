//! The digests a transfer computes: the source's (spec.source.hash, over the bytes as
//! downloaded) and Glance's sha512 (over the bytes sent), incrementally; the embedded cloud
//! computes Glance's md5 and sha512 of what it stores.
//!
//! They come from GnuTLS (`gnutls.rs`, the default `gnutls` feature): its SHA-2 assembly is
//! half as fast again as the pure-Rust crates and ring here, and a transfer hashes every byte,
//! so this is most of glint's CPU in an upload. The library is in the container image for
//! qemu-img already, which left OpenSSL's libcrypto (4.7 MB) with no reason to be there.
//! Without the feature, `rust_digests.rs` computes the same digests with the RustCrypto crates.

use super::digest_backend::{Algorithm, Hash};
use crate::crd::HashAlgorithm;

/// A digest that could not be computed: GnuTLS refuses only when it is out of memory or
/// forbids the algorithm (md5 in FIPS mode), and its message says which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("glint could not compute the {algorithm} digest: {detail}")]
pub struct DigestError {
    pub algorithm: &'static str,
    pub detail: String,
}

/// An incremental digest of one of the algorithms glint checks. A failure is kept and
/// reported by [`Digest::hex`], so that feeding data stays infallible.
pub struct Digest {
    algorithm: HashAlgorithm,
    hasher: Result<Hash, DigestError>,
}

impl Digest {
    pub fn new(algorithm: HashAlgorithm) -> Self {
        let kind = match algorithm {
            HashAlgorithm::Md5 => Algorithm::Md5,
            HashAlgorithm::Sha1 => Algorithm::Sha1,
            HashAlgorithm::Sha256 => Algorithm::Sha256,
            HashAlgorithm::Sha512 => Algorithm::Sha512,
        };
        let hasher = Hash::new(kind).map_err(|detail| failure(algorithm, detail));
        Self { algorithm, hasher }
    }

    /// The two digests Glance keeps of an image's data: `checksum` (MD5) and
    /// `os_hash_value` (SHA-512), for code that stores data as Glance does.
    pub fn glance_pair() -> (Self, Self) {
        (
            Self::new(HashAlgorithm::Md5),
            Self::new(HashAlgorithm::Sha512),
        )
    }

    pub fn update(&mut self, data: &[u8]) {
        if let Ok(hasher) = &mut self.hasher
            && let Err(detail) = hasher.update(data)
        {
            self.hasher = Err(failure(self.algorithm, detail));
        }
    }

    /// The digest as lowercase hexadecimal.
    pub fn hex(self) -> Result<String, DigestError> {
        let bytes = self.hasher?.finish();
        Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
    }
}

fn failure(algorithm: HashAlgorithm, detail: String) -> DigestError {
    DigestError {
        algorithm: algorithm.as_str(),
        detail,
    }
}

/// Digests computed on threads of their own: the pipeline hands each chunk to one thread per
/// algorithm and moves on. One thread per algorithm, because a single thread computing md5
/// and sha512 one after the other tops out near 370 MB/s on a whole core, and on a busy node
/// it gets half of one: that, not Glance, was what held a transfer near 170 MB/s. The threads
/// run at a lower priority than the transfer's I/O (see [`lower_this_threads_priority`]).
pub struct BackgroundDigest {
    workers: Vec<DigestWorker>,
}

struct DigestWorker {
    algorithm: HashAlgorithm,
    chunks: std::sync::mpsc::SyncSender<bytes::Bytes>,
    thread: std::thread::JoinHandle<Result<String, DigestError>>,
}

impl BackgroundDigest {
    pub fn start(algorithms: &[HashAlgorithm]) -> Self {
        let workers = algorithms
            .iter()
            .map(|&algorithm| {
                // Slack of a few chunks: a thread yields to Glance when the cores are busy and
                // catches up in the gaps, bounded to keep memory flat.
                let (chunks, received) = std::sync::mpsc::sync_channel::<bytes::Bytes>(8);
                let thread = std::thread::spawn(move || {
                    lower_this_threads_priority();
                    let mut digest = Digest::new(algorithm);
                    for chunk in received {
                        digest.update(&chunk);
                    }
                    digest.hex()
                });
                DigestWorker {
                    algorithm,
                    chunks,
                    thread,
                }
            })
            .collect();
        Self { workers }
    }

    /// Hashes `chunk` (a cheap reference-counted clone of the data).
    pub fn update(&self, chunk: &bytes::Bytes) {
        for worker in &self.workers {
            // A worker only stops when this side hangs up, so a send cannot fail before.
            let _ = worker.chunks.send(chunk.clone());
        }
    }

    /// The digests of everything passed to `update`, in the order the algorithms were given.
    pub fn finish(self) -> Result<Vec<String>, DigestError> {
        self.workers
            .into_iter()
            .map(|worker| {
                drop(worker.chunks);
                worker.thread.join().unwrap_or_else(|_| {
                    Err(DigestError {
                        algorithm: worker.algorithm.as_str(),
                        detail: "its thread stopped".to_string(),
                    })
                })
            })
            .collect()
    }
}

/// Digesting is the transfer's main CPU cost (sha512 takes about a third of a core at
/// 200 MB/s), and on a small node it competes with Glance and with reconciles for the same
/// cores. At nice 10 the digest thread still gets every idle cycle, but a reconcile (a tag
/// edit during four uploads: 7.9 s at equal priority, 0.5 s at nice 10) and the transfer's own
/// I/O go first.
#[allow(unsafe_code)]
fn lower_this_threads_priority() {
    // SAFETY: nice only reads its integer argument. On Linux the nice value belongs to the
    // calling thread, so this leaves the rest of the process as it was. A failure (a sandbox
    // that forbids it) just leaves the priority unchanged.
    let _ = unsafe { libc::nice(10) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published test vectors for "abc" (RFC 1321, FIPS 180-2).
    const KNOWN_DIGESTS_OF_ABC: [(HashAlgorithm, &str); 4] = [
        (HashAlgorithm::Md5, "900150983cd24fb0d6963f7d28e17f72"),
        (
            HashAlgorithm::Sha1,
            "a9993e364706816aba3e25717850c26c9cd0d89d",
        ),
        (
            HashAlgorithm::Sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        (
            HashAlgorithm::Sha512,
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        ),
    ];

    #[test]
    fn each_algorithm_gives_its_known_digest_however_the_data_is_split() {
        for (algorithm, digest) in KNOWN_DIGESTS_OF_ABC {
            let mut whole = Digest::new(algorithm);
            whole.update(b"abc");
            let mut split = Digest::new(algorithm);
            for part in [&b"a"[..], b"", b"bc"] {
                split.update(part);
            }
            let background = BackgroundDigest::start(&[algorithm]);
            for part in [&b"ab"[..], b"c"] {
                background.update(&bytes::Bytes::copy_from_slice(part));
            }
            assert_eq!(whole.hex().unwrap(), digest, "{algorithm:?}");
            assert_eq!(split.hex().unwrap(), digest, "{algorithm:?} in parts");
            assert_eq!(
                background.finish().unwrap(),
                vec![digest.to_string()],
                "{algorithm:?} on its own thread"
            );
        }
    }

    #[test]
    fn long_inputs_match_an_independent_implementation() {
        // The known answers above are a few bytes; these cross many blocks and odd splits,
        // against the pure-Rust crates as the second opinion (GnuTLS picks its code path by CPU
        // features, so this also covers the assembly this machine runs).
        use sha2::Digest as _;
        let data: Vec<u8> = (0..3_000_017_u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let hex = |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
        let expected = [
            (HashAlgorithm::Md5, hex(&md5::Md5::digest(&data))),
            (
                HashAlgorithm::Sha1,
                sha1_smol::Sha1::from(&data).digest().to_string(),
            ),
            (HashAlgorithm::Sha256, hex(&sha2::Sha256::digest(&data))),
            (HashAlgorithm::Sha512, hex(&sha2::Sha512::digest(&data))),
        ];
        for (algorithm, want) in expected {
            let mut digest = Digest::new(algorithm);
            for part in data.chunks(408 * 1024 + 13) {
                digest.update(part);
            }
            assert_eq!(digest.hex().unwrap(), want, "{algorithm:?}");
        }
    }

    #[test]
    fn background_digests_come_back_in_the_order_the_algorithms_were_given() {
        let background = BackgroundDigest::start(&[HashAlgorithm::Md5, HashAlgorithm::Sha1]);
        background.update(&bytes::Bytes::from_static(b"a"));
        background.update(&bytes::Bytes::from_static(b"bc"));
        assert_eq!(
            background.finish().unwrap(),
            vec![
                "900150983cd24fb0d6963f7d28e17f72".to_string(),
                "a9993e364706816aba3e25717850c26c9cd0d89d".to_string()
            ]
        );
    }

    #[test]
    fn the_digest_thread_runs_below_the_priority_of_the_rest_of_the_process() {
        // The nice value is field 19 of /proc/thread-self/stat (after the command in parens).
        fn nice_of_this_thread() -> i64 {
            let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
            let after_command = stat.rsplit_once(") ").unwrap().1;
            after_command.split(' ').nth(16).unwrap().parse().unwrap()
        }
        let before = nice_of_this_thread();
        let lowered = std::thread::spawn(|| {
            lower_this_threads_priority();
            nice_of_this_thread()
        })
        .join()
        .unwrap();
        assert_eq!(
            lowered,
            (before + 10).min(19),
            "the digest thread's nice value"
        );
        assert_eq!(
            nice_of_this_thread(),
            before,
            "the caller's thread is unchanged"
        );
    }
}
