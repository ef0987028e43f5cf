//! OpenPGP signatures of checksums files, checked before glint believes any hash in them.
//!
//! Distributions sign their checksums files in one of two forms: a detached signature beside
//! the file (Ubuntu's `SHA256SUMS.gpg`, AlmaLinux' `CHECKSUM.asc`, Debian cdimage's
//! `SHA512SUMS.sign`; armoured or binary whatever the name says) or the file itself
//! clear-signed (Fedora's `CHECKSUM`). A series names the keys it trusts; a signature counts
//! when one of them (or a signing subkey of one) made it, the bytes are unchanged, and neither
//! the key nor the signature had expired. Only the text the signature covers is read further:
//! lines outside a clear-signed block could be anything.
//!
//! The cryptography is rPGP's; what it leaves to its caller, and this module decides, is
//! which key made a signature, and whether that key and that signature are still valid.
//! Ubuntu's key and its older signatures use SHA-1, which is accepted: refusing it would make
//! Ubuntu's images unverifiable, and the key material itself is what the operator trusts.

use pgp::composed::{
    CleartextSignedMessage, Deserializable, DetachedSignature, SignedPublicKey, SignedPublicSubKey,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{PublicKey, Signature, SignatureType};
use pgp::types::{KeyDetails, Tag};

use crate::reason::Reason;

/// The most keys one trusted-keys document may hold; distributions publish a handful.
const MAX_KEYS: usize = 64;
/// How far in the future a signature may claim to be made (clocks differ).
const CLOCK_SKEW_SECONDS: u32 = 24 * 3600;

/// The public keys a series trusts.
#[derive(Debug, Clone)]
pub struct TrustedKeys {
    keys: Vec<SignedPublicKey>,
}

/// What a checksums file came with.
#[derive(Debug, Clone, Copy)]
pub enum Signed<'a> {
    /// The file, and the detached signature published beside it.
    Detached { data: &'a [u8], signature: &'a [u8] },
    /// A file that signs itself (`-----BEGIN PGP SIGNED MESSAGE-----`).
    ClearSigned(&'a str),
}

/// A signature that checked out: the text it covers, and who made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub text: String,
    /// The fingerprint of the key (or subkey) that signed, upper-case hex.
    pub signer: String,
}

/// Why a checksums file's signature does not let glint believe it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("{0}")]
    Missing(String),
    #[error("the signature of {file} cannot be read as OpenPGP: {detail}")]
    Malformed { file: String, detail: String },
    #[error(
        "{file} is signed by key {issuer}, which is not among the trusted keys (the ConfigMap or Secret signature.keys names); add that key if it is the distribution's"
    )]
    UnknownKey { file: String, issuer: String },
    #[error(
        "{file} does not match its signature by key {key}: it was changed after it was signed (or the signature belongs to another file)"
    )]
    Bad { file: String, key: String },
    #[error(
        "{file} is signed by key {key}, which expired at {at}; trust the distribution's current key"
    )]
    KeyExpired {
        file: String,
        key: String,
        at: String,
    },
    #[error("{file} is signed by key {key}, which its owner revoked")]
    KeyRevoked { file: String, key: String },
    #[error(
        "{file} is signed by subkey {key} of a trusted key, but no valid binding lets that subkey sign"
    )]
    NotForSigning { file: String, key: String },
    #[error(
        "the signature of {file} by key {key} says it was made at {at}, more than a day from now: check the mirror's clock and this machine's"
    )]
    FromTheFuture {
        file: String,
        key: String,
        at: String,
    },
    #[error("the signature of {file} by key {key} expired at {at}")]
    Expired {
        file: String,
        key: String,
        at: String,
    },
    #[error(
        "the trusted keys are not OpenPGP public keys glint can read ({0}); give ASCII-armoured public keys, as gpg --armor --export writes them"
    )]
    Keys(String),
}

impl SignatureError {
    pub fn reason(&self) -> Reason {
        match self {
            Self::Missing(_) => Reason::SignatureMissing,
            Self::Malformed { .. } => Reason::SignatureMalformed,
            Self::UnknownKey { .. } | Self::NotForSigning { .. } => Reason::SignatureUnknownKey,
            Self::Bad { .. } | Self::FromTheFuture { .. } => Reason::SignatureBad,
            Self::KeyExpired { .. } | Self::KeyRevoked { .. } => Reason::SignatureKeyExpired,
            Self::Expired { .. } => Reason::SignatureExpired,
            Self::Keys(_) => Reason::TrustedKeysInvalid,
        }
    }

    /// How telling a failure is, when no signature of a file checks out: one by a trusted key
    /// says more than one by a stranger.
    fn weight(&self) -> u8 {
        match self {
            Self::Bad { .. } | Self::FromTheFuture { .. } => 5,
            Self::KeyRevoked { .. } => 4,
            Self::KeyExpired { .. } => 3,
            Self::Expired { .. } => 2,
            Self::UnknownKey { .. } | Self::NotForSigning { .. } => 1,
            _ => 0,
        }
    }
}

impl TrustedKeys {
    /// Every public key in `text`: one or more ASCII-armoured blocks, each holding one or
    /// more keys.
    pub fn parse(text: &str) -> Result<Self, SignatureError> {
        const BEGIN: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
        let mut keys = Vec::new();
        let starts: Vec<usize> = text.match_indices(BEGIN).map(|(at, _)| at).collect();
        for (index, start) in starts.iter().enumerate() {
            let end = starts.get(index + 1).copied().unwrap_or(text.len());
            let block = &text[*start..end];
            // rPGP's words may quote the bytes it read: keys kept in a Secret must not reach
            // status through them.
            let unreadable = |_| {
                SignatureError::Keys(format!("armoured block {} is not a public key", index + 1))
            };
            let (parsed, _) = SignedPublicKey::from_string_many(block).map_err(unreadable)?;
            for key in parsed {
                keys.push(key.map_err(unreadable)?);
                if keys.len() > MAX_KEYS {
                    return Err(SignatureError::Keys(format!(
                        "more than {MAX_KEYS} keys; trust only the distribution's signing keys"
                    )));
                }
            }
        }
        if keys.is_empty() {
            return Err(SignatureError::Keys(format!("no {BEGIN} found")));
        }
        Ok(Self { keys })
    }

    /// The fingerprints of the primary keys, upper-case hex.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|key| hex(key.primary_key.fingerprint().as_bytes()))
            .collect()
    }
}

/// Checks `signed` (the file named `file`, for messages) against `keys` at `now`.
pub fn verify(
    file: &str,
    signed: Signed<'_>,
    keys: &TrustedKeys,
    now: jiff::Timestamp,
) -> Result<Verified, SignatureError> {
    let now = u32::try_from(now.as_second()).unwrap_or(u32::MAX);
    let malformed = |detail: String| SignatureError::Malformed {
        file: file.to_string(),
        detail: detail.chars().take(200).collect(),
    };
    let (text, signatures) = match signed {
        Signed::Detached { data, signature } => {
            let (found, _) = DetachedSignature::from_reader_many(signature)
                .map_err(|err| malformed(err.to_string()))?;
            let signatures = found
                .map(|one| one.map(|detached| detached.signature))
                .collect::<Result<Vec<Signature>, _>>()
                .map_err(|err| malformed(err.to_string()))?;
            let text = String::from_utf8(data.to_vec())
                .map_err(|_| malformed(format!("{file} is not text")))?;
            (text, signatures)
        }
        Signed::ClearSigned(text) => {
            if !text
                .trim_start()
                .starts_with("-----BEGIN PGP SIGNED MESSAGE-----")
            {
                return Err(SignatureError::Missing(format!(
                    "{file} is not clear-signed (no -----BEGIN PGP SIGNED MESSAGE----- at its start); if the distribution publishes a detached signature, name it in spec.checksums.signature.detached"
                )));
            }
            let (message, _) = CleartextSignedMessage::from_string(text.trim_start())
                .map_err(|err| malformed(err.to_string()))?;
            (message.signed_text(), message.signatures().to_vec())
        }
    };
    if signatures.is_empty() {
        return Err(malformed("it holds no signature".into()));
    }
    let data: &[u8] = match signed {
        Signed::Detached { data, .. } => data,
        Signed::ClearSigned(_) => text.as_bytes(),
    };
    let mut worst: Option<SignatureError> = None;
    for signature in &signatures {
        match check_one(file, signature, data, keys, now) {
            Ok(signer) => return Ok(Verified { text, signer }),
            Err(failure) => {
                if worst
                    .as_ref()
                    .is_none_or(|seen| failure.weight() > seen.weight())
                {
                    worst = Some(failure);
                }
            }
        }
    }
    Err(worst.unwrap_or_else(|| malformed("it holds no signature".into())))
}

/// A key that may have made a signature: a primary key, or one of its subkeys.
#[derive(Clone, Copy)]
enum Signer<'a> {
    Primary(&'a SignedPublicKey),
    Subkey(&'a SignedPublicKey, &'a SignedPublicSubKey),
}

impl Signer<'_> {
    fn fingerprint(self) -> String {
        match self {
            Signer::Primary(key) => hex(key.primary_key.fingerprint().as_bytes()),
            Signer::Subkey(_, subkey) => hex(subkey.key.fingerprint().as_bytes()),
        }
    }

    fn verifies(self, signature: &Signature, data: &[u8]) -> bool {
        match self {
            Signer::Primary(key) => signature.verify(&key.primary_key, data).is_ok(),
            Signer::Subkey(_, subkey) => signature.verify(&subkey.key, data).is_ok(),
        }
    }
}

fn check_one(
    file: &str,
    signature: &Signature,
    data: &[u8],
    keys: &TrustedKeys,
    now: u32,
) -> Result<String, SignatureError> {
    let candidates = signers(signature, keys);
    let Some(named) = candidates.first().copied() else {
        return Err(SignatureError::UnknownKey {
            file: file.to_string(),
            issuer: issuer(signature),
        });
    };
    let malformed = |detail: String| SignatureError::Malformed {
        file: file.to_string(),
        detail,
    };
    // A signature over a file is binary (its bytes) or text (its lines); the other types
    // (standalone, timestamp, key signatures) do not cover the file's contents.
    if !matches!(
        signature.typ(),
        Some(SignatureType::Binary | SignatureType::Text)
    ) {
        return Err(malformed(format!(
            "it is a {:?} signature, not one made over a file",
            signature.typ()
        )));
    }
    if let Some(weak @ (HashAlgorithm::Md5 | HashAlgorithm::Ripemd160)) = signature.hash_alg() {
        return Err(malformed(format!(
            "it hashes with {weak}, which glint does not accept (SHA-1 and the SHA-2 family are)"
        )));
    }
    let Some(created) = signature.created().map(|at| at.as_secs()) else {
        return Err(malformed("it carries no creation time".into()));
    };
    // The issuer may be named outside the signed part of the signature: every trusted key it
    // names is tried, and the one whose maths checks out made it.
    let Some(signer) = candidates
        .into_iter()
        .find(|candidate| candidate.verifies(signature, data))
    else {
        return Err(SignatureError::Bad {
            file: file.to_string(),
            key: named.fingerprint(),
        });
    };
    let key = signer.fingerprint();
    let (primary, subkey) = match signer {
        Signer::Primary(primary) => (primary, None),
        Signer::Subkey(primary, subkey) => (primary, Some(subkey)),
    };
    if is_revoked(primary) || subkey.is_some_and(|subkey| is_subkey_revoked(primary, subkey)) {
        return Err(SignatureError::KeyRevoked {
            file: file.to_string(),
            key,
        });
    }
    let mut expires = primary_expiry(primary);
    if let Some(subkey) = subkey {
        match subkey_expiry(primary, subkey) {
            Some(end) => expires = earliest(expires, end),
            None => {
                return Err(SignatureError::NotForSigning {
                    file: file.to_string(),
                    key,
                });
            }
        }
    }
    if let Some(at) = expires
        && (now >= at || created >= at)
    {
        return Err(SignatureError::KeyExpired {
            file: file.to_string(),
            key,
            at: when(at),
        });
    }
    if let Some(lifetime) = signature
        .signature_expiration_time()
        .map(|duration| duration.as_secs())
        .filter(|secs| *secs > 0)
    {
        let at = created.saturating_add(lifetime);
        if now >= at {
            return Err(SignatureError::Expired {
                file: file.to_string(),
                key,
                at: when(at),
            });
        }
    }
    if created > now.saturating_add(CLOCK_SKEW_SECONDS) {
        return Err(SignatureError::FromTheFuture {
            file: file.to_string(),
            key,
            at: when(created),
        });
    }
    Ok(key)
}

/// The trusted keys and subkeys the signature names as its issuer.
fn signers<'a>(signature: &Signature, keys: &'a TrustedKeys) -> Vec<Signer<'a>> {
    let mut found = Vec::new();
    for key in &keys.keys {
        if names(signature, &key.primary_key) {
            found.push(Signer::Primary(key));
        }
        for subkey in &key.public_subkeys {
            if names(signature, &subkey.key) {
                found.push(Signer::Subkey(key, subkey));
            }
        }
    }
    found
}

/// Whether the signature's issuer subpackets name this key (by fingerprint or key id).
fn names(signature: &Signature, key: &impl KeyDetails) -> bool {
    let (fingerprint, key_id) = (key.fingerprint(), key.legacy_key_id());
    signature
        .issuer_fingerprint()
        .iter()
        .any(|issuer| **issuer == fingerprint)
        || signature
            .issuer_key_id()
            .iter()
            .any(|issuer| **issuer == key_id)
}

fn newest<'a>(signatures: impl Iterator<Item = &'a Signature>) -> Option<&'a Signature> {
    signatures.max_by_key(|signature| signature.created().map_or(0, |at| at.as_secs()))
}

/// When the primary key expires (seconds since the epoch), by its newest valid
/// self-certification or direct-key signature; revocations of a user id do not count.
fn primary_expiry(key: &SignedPublicKey) -> Option<u32> {
    let primary: &PublicKey = &key.primary_key;
    let certifications = key.details.users.iter().flat_map(|user| {
        user.signatures.iter().filter(move |signature| {
            matches!(
                signature.typ(),
                Some(
                    SignatureType::CertGeneric
                        | SignatureType::CertPersona
                        | SignatureType::CertCasual
                        | SignatureType::CertPositive
                )
            ) && is_by(signature, primary)
                && signature
                    .verify_certification(primary, Tag::UserId, &user.id)
                    .is_ok()
        })
    });
    let direct = key.details.direct_signatures.iter().filter(|signature| {
        signature.typ() == Some(SignatureType::Key)
            && is_by(signature, primary)
            && signature.verify_key(primary).is_ok()
    });
    lifetime_end(
        primary.created_at().as_secs(),
        newest(certifications.chain(direct))?,
    )
}

/// When a subkey stops signing, by its newest valid binding (`Some(None)`: never); `None`
/// when no valid binding lets it sign.
fn subkey_expiry(primary: &SignedPublicKey, subkey: &SignedPublicSubKey) -> Option<Option<u32>> {
    let binding = newest(subkey.signatures.iter().filter(|signature| {
        signature.typ() == Some(SignatureType::SubkeyBinding)
            && signature
                .verify_subkey_binding(&primary.primary_key, &subkey.key)
                .is_ok()
    }))?;
    binding
        .key_flags()
        .sign()
        .then(|| lifetime_end(subkey.key.created_at().as_secs(), binding))
}

/// Whether the primary key revoked this subkey.
fn is_subkey_revoked(primary: &SignedPublicKey, subkey: &SignedPublicSubKey) -> bool {
    subkey.signatures.iter().any(|signature| {
        signature.typ() == Some(SignatureType::SubkeyRevocation)
            && signature
                .verify_subkey_binding(&primary.primary_key, &subkey.key)
                .is_ok()
    })
}

fn lifetime_end(created: u32, self_signature: &Signature) -> Option<u32> {
    self_signature
        .key_expiration_time()
        .map(|duration| duration.as_secs())
        .filter(|secs| *secs > 0)
        .map(|secs| created.saturating_add(secs))
}

fn earliest(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Whether the key's owner revoked it (a revocation the key itself made).
fn is_revoked(key: &SignedPublicKey) -> bool {
    key.details.revocation_signatures.iter().any(|signature| {
        is_by(signature, &key.primary_key) && signature.verify_key(&key.primary_key).is_ok()
    })
}

/// Whether a signature names `key` as its issuer (third parties' certifications do not count).
fn is_by(signature: &Signature, key: &PublicKey) -> bool {
    names(signature, key)
        || (signature.issuer_fingerprint().is_empty() && signature.issuer_key_id().is_empty())
}

/// The issuer a signature names: its fingerprint when it carries one, else its key id.
fn issuer(signature: &Signature) -> String {
    if let Some(fingerprint) = signature.issuer_fingerprint().first() {
        return hex(fingerprint.as_bytes());
    }
    signature
        .issuer_key_id()
        .first()
        .map(|key_id| hex(key_id.as_ref()))
        .unwrap_or_else(|| "(the signature names no key)".to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02X}")).collect()
}

fn when(seconds: u32) -> String {
    jiff::Timestamp::from_second(i64::from(seconds))
        .map(|at| at.to_string())
        .unwrap_or_else(|_| seconds.to_string())
}

#[cfg(test)]
mod tests {
    // Signatures made by GnuPG, for each distribution's form and each way to fail, are checked
    // in tests/series_signatures.rs; these are the refusals that need no key at all.
    use super::*;

    fn no_keys() -> TrustedKeys {
        TrustedKeys { keys: Vec::new() }
    }

    fn now() -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000).unwrap()
    }

    #[test]
    fn trusted_keys_that_are_not_armoured_public_keys_are_refused_with_what_to_give() {
        let table = [
            "",
            "not a key",
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nbm90IGEga2V5\n-----END PGP PUBLIC KEY BLOCK-----\n",
        ];
        for text in table {
            let refused = TrustedKeys::parse(text).unwrap_err();
            assert_eq!(refused.reason(), Reason::TrustedKeysInvalid, "{text:?}");
            assert!(
                refused.to_string().contains("gpg --armor --export"),
                "{refused}"
            );
        }
    }

    #[test]
    fn a_checksums_file_that_should_sign_itself_but_does_not_is_missing_its_signature() {
        let plain = "SHA256 (disk.raw) = 00\n";
        let refused =
            verify("CHECKSUM", Signed::ClearSigned(plain), &no_keys(), now()).unwrap_err();
        assert_eq!(refused.reason(), Reason::SignatureMissing);
        assert!(
            refused.to_string().contains("detached"),
            "says what else to try: {refused}"
        );
    }

    #[test]
    fn a_signature_that_is_not_openpgp_is_malformed_not_missing() {
        let cases: [(&str, Signed<'_>); 3] = [
            (
                "garbage",
                Signed::Detached {
                    data: b"00  disk.raw\n",
                    signature: b"this is not a signature",
                },
            ),
            (
                "an empty file",
                Signed::Detached {
                    data: b"00  disk.raw\n",
                    signature: b"",
                },
            ),
            (
                "a broken clear-signed block",
                Signed::ClearSigned(
                    "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nx\n-----BEGIN PGP SIGNATURE-----\n\nnope\n-----END PGP SIGNATURE-----\n",
                ),
            ),
        ];
        for (what, signed) in cases {
            let refused = verify("SHA256SUMS", signed, &no_keys(), now()).unwrap_err();
            assert_eq!(
                refused.reason(),
                Reason::SignatureMalformed,
                "{what}: {refused}"
            );
        }
    }

    #[test]
    fn of_several_failed_signatures_the_one_by_a_trusted_key_is_reported() {
        let file = || "SHA256SUMS".to_string();
        let unknown = SignatureError::UnknownKey {
            file: file(),
            issuer: "A".into(),
        };
        let expired = SignatureError::Expired {
            file: file(),
            key: "B".into(),
            at: "then".into(),
        };
        let bad = SignatureError::Bad {
            file: file(),
            key: "C".into(),
        };
        assert!(bad.weight() > expired.weight());
        assert!(expired.weight() > unknown.weight());
        assert_eq!(unknown.reason(), Reason::SignatureUnknownKey);
    }
}
