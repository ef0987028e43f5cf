//! Checking the source's hash on the fly: the last chunk is held back until the digest is
//! known, so Glance never receives a complete image whose hash is wrong.

use bytes::Bytes;
use futures::{Stream, StreamExt};

use crate::crd::{HashAlgorithm, SourceHash};

/// The words every hash failure starts with.
pub const HASH_MISMATCH: &str = "hash mismatch";

enum Digest {
    Md5(md5::Md5),
    Sha1(sha1_smol::Sha1),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Digest {
    fn new(algorithm: HashAlgorithm) -> Self {
        use sha2::Digest as _;
        match algorithm {
            HashAlgorithm::Md5 => Self::Md5(md5::Md5::new()),
            HashAlgorithm::Sha1 => Self::Sha1(sha1_smol::Sha1::new()),
            HashAlgorithm::Sha256 => Self::Sha256(sha2::Sha256::new()),
            HashAlgorithm::Sha512 => Self::Sha512(sha2::Sha512::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        use sha2::Digest as _;
        match self {
            Self::Md5(hasher) => hasher.update(data),
            Self::Sha1(hasher) => hasher.update(data),
            Self::Sha256(hasher) => hasher.update(data),
            Self::Sha512(hasher) => hasher.update(data),
        }
    }

    fn hex(self) -> String {
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

/// Passes chunks through one step behind, hashing them; the last chunk is released only if
/// the digest matches, otherwise the stream ends in an error instead.
pub fn verify_hash(
    input: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    expected: SourceHash,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    struct State<S> {
        input: std::pin::Pin<Box<S>>,
        held: Option<Bytes>,
        digest: Option<Digest>,
        expected: SourceHash,
    }
    let state = State {
        input: Box::pin(input),
        held: None,
        digest: Some(Digest::new(expected.algorithm)),
        expected,
    };
    futures::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        loop {
            match state.input.next().await {
                Some(Ok(chunk)) => {
                    if let Some(digest) = state.digest.as_mut() {
                        digest.update(&chunk);
                    }
                    if let Some(previous) = state.held.replace(chunk) {
                        return Some((Ok(previous), Some(state)));
                    }
                }
                Some(Err(err)) => return Some((Err(err), None)),
                None => {
                    let actual = state.digest.take().map(Digest::hex).unwrap_or_default();
                    if actual == state.expected.value {
                        return state.held.take().map(|last| (Ok(last), None));
                    }
                    let message = format!(
                        "{HASH_MISMATCH}: the source's {:?} is {actual}, spec.source.hash says {}",
                        state.expected.algorithm, state.expected.value
                    );
                    return Some((Err(std::io::Error::other(message)), None));
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    fn chunks(
        parts: &[&'static [u8]],
    ) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
        futures::stream::iter(
            parts
                .iter()
                .map(|part| Ok(Bytes::from_static(part)))
                .collect::<Vec<_>>(),
        )
    }

    fn hash(algorithm: HashAlgorithm, value: &str) -> SourceHash {
        SourceHash {
            algorithm,
            value: value.to_string(),
        }
    }

    #[tokio::test]
    async fn a_matching_hash_lets_every_chunk_through() {
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
            let out: Vec<Bytes> = verify_hash(chunks(&[b"a", b"b", b"c"]), hash(algorithm, digest))
                .try_collect()
                .await
                .unwrap();
            assert_eq!(out.concat(), b"abc", "{algorithm:?}");
        }
    }

    #[tokio::test]
    async fn a_wrong_hash_withholds_the_last_chunk_and_ends_in_an_error() {
        let mut stream = Box::pin(verify_hash(
            chunks(&[b"a", b"b", b"c"]),
            hash(HashAlgorithm::Sha256, &"0".repeat(64)),
        ));
        let mut passed = Vec::new();
        let error = loop {
            match stream.next().await {
                Some(Ok(chunk)) => passed.push(chunk),
                Some(Err(err)) => break err,
                None => panic!("the stream must not end cleanly"),
            }
        };
        assert_eq!(passed.concat(), b"ab", "the final chunk is never released");
        assert!(error.to_string().contains("hash mismatch"), "{error}");
        assert!(stream.next().await.is_none());
    }
}
