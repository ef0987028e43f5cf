//! The pure-Rust digests, for builds without the `gnutls` feature (a machine without
//! `libgnutls.so.30`): the same four algorithms and the same calls as [`super::gnutls`], from
//! the RustCrypto crates. Glance's sha512 runs at less than half GnuTLS's speed here (176-196
//! against 420-437 MB/s; sha256 is even, both use the CPU's SHA instructions;
//! `scripts/bench digests` prints them), so release builds and the container image keep GnuTLS.

use sha2::Digest as _;

#[derive(Debug, Clone, Copy)]
pub enum Algorithm {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

/// An incremental digest.
pub enum Hash {
    Md5(md5::Md5),
    Sha1(sha1_smol::Sha1),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hash {
    /// Never fails: the Result keeps the GnuTLS backend's signature.
    pub fn new(algorithm: Algorithm) -> Result<Self, String> {
        Ok(match algorithm {
            Algorithm::Md5 => Self::Md5(md5::Md5::new()),
            Algorithm::Sha1 => Self::Sha1(sha1_smol::Sha1::new()),
            Algorithm::Sha256 => Self::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Self::Sha512(sha2::Sha512::new()),
        })
    }

    pub fn update(&mut self, data: &[u8]) -> Result<(), String> {
        match self {
            Self::Md5(hash) => hash.update(data),
            Self::Sha1(hash) => hash.update(data),
            Self::Sha256(hash) => hash.update(data),
            Self::Sha512(hash) => hash.update(data),
        }
        Ok(())
    }

    /// The digest's bytes.
    pub fn finish(self) -> Vec<u8> {
        match self {
            Self::Md5(hash) => hash.finalize().to_vec(),
            Self::Sha1(hash) => hash.digest().bytes().to_vec(),
            Self::Sha256(hash) => hash.finalize().to_vec(),
            Self::Sha512(hash) => hash.finalize().to_vec(),
        }
    }
}
