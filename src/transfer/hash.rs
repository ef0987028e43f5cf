//! The digests a transfer computes: the source's (spec.source.hash, over the bytes as
//! downloaded) and Glance's two (md5 and sha512, over the bytes sent), all incrementally.

use crate::crd::HashAlgorithm;

/// An incremental digest of one of the algorithms glint checks.
pub enum Digest {
    Md5(md5::Md5),
    Sha1(sha1_smol::Sha1),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Digest {
    pub fn new(algorithm: HashAlgorithm) -> Self {
        use sha2::Digest as _;
        match algorithm {
            HashAlgorithm::Md5 => Self::Md5(md5::Md5::new()),
            HashAlgorithm::Sha1 => Self::Sha1(sha1_smol::Sha1::new()),
            HashAlgorithm::Sha256 => Self::Sha256(sha2::Sha256::new()),
            HashAlgorithm::Sha512 => Self::Sha512(sha2::Sha512::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        use sha2::Digest as _;
        match self {
            Self::Md5(hasher) => hasher.update(data),
            Self::Sha1(hasher) => hasher.update(data),
            Self::Sha256(hasher) => hasher.update(data),
            Self::Sha512(hasher) => hasher.update(data),
        }
    }

    /// The digest as lowercase hexadecimal.
    pub fn hex(self) -> String {
        use sha2::Digest as _;
        let bytes: Vec<u8> = match self {
            Self::Md5(hasher) => hasher.finalize().to_vec(),
            Self::Sha1(hasher) => hasher.digest().bytes().to_vec(),
            Self::Sha256(hasher) => hasher.finalize().to_vec(),
            Self::Sha512(hasher) => hasher.finalize().to_vec(),
        };
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

/// A digest computed on a thread of its own: the pipeline hands it chunks and moves on, so
/// three digests (the source's, md5 and sha512) cost the pipeline's thread nothing and use
/// whatever core is free.
pub struct BackgroundDigest {
    chunks: Option<std::sync::mpsc::SyncSender<bytes::Bytes>>,
    worker: std::thread::JoinHandle<String>,
}

impl BackgroundDigest {
    pub fn start(algorithm: HashAlgorithm) -> Self {
        // A few chunks of slack: enough to ride out scheduling, bounded to keep memory flat.
        let (chunks, received) = std::sync::mpsc::sync_channel::<bytes::Bytes>(4);
        let worker = std::thread::spawn(move || {
            let mut digest = Digest::new(algorithm);
            for chunk in received {
                digest.update(&chunk);
            }
            digest.hex()
        });
        Self {
            chunks: Some(chunks),
            worker,
        }
    }

    /// Hashes `chunk` (a cheap reference-counted clone of the data).
    pub fn update(&self, chunk: &bytes::Bytes) {
        if let Some(chunks) = &self.chunks {
            // The worker only stops when this side hangs up, so a send cannot fail before.
            let _ = chunks.send(chunk.clone());
        }
    }

    /// The digest of everything passed to `update`.
    pub fn finish(mut self) -> String {
        drop(self.chunks.take());
        self.worker.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_algorithm_gives_its_known_digest_however_the_data_is_split() {
        // Known digests of "abc".
        let table = [
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
        for (algorithm, digest) in table {
            let mut whole = Digest::new(algorithm);
            whole.update(b"abc");
            let mut split = Digest::new(algorithm);
            for part in [&b"a"[..], b"", b"bc"] {
                split.update(part);
            }
            let background = BackgroundDigest::start(algorithm);
            for part in [&b"ab"[..], b"c"] {
                background.update(&bytes::Bytes::copy_from_slice(part));
            }
            assert_eq!(whole.hex(), digest, "{algorithm:?}");
            assert_eq!(split.hex(), digest, "{algorithm:?} in parts");
            assert_eq!(
                background.finish(),
                digest,
                "{algorithm:?} on its own thread"
            );
        }
    }
}
