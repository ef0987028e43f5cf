//! What distributions publish about their image files, read before any of it is believed:
//! checksums files ([`parse`]), their OpenPGP signatures ([`signature`]), and the file's own
//! line in a signed checksums file ([`signed`]). Pure: the fetching is the callers' (an
//! ImageSeries' check in `series`, an Image's `spec.source.hashFrom` in `transfer`).
//!
//! A checksums file is read into (file name, digest) entries.
//!
//! Two notations cover Ubuntu, Debian, Fedora and CirrOS:
//! - coreutils (`sha256sum` output): `HEX  NAME`, or `HEX *NAME` for binary mode (Ubuntu's
//!   SHA256SUMS, Debian's SHA512SUMS, CirrOS's MD5SUMS and SHA256SUMS);
//! - BSD tags (`sha256sum --tag`): `SHA256 (NAME) = HEX` (Fedora's CHECKSUM, inside a PGP
//!   clear-signed message whose armour lines are skipped).
//!
//! The algorithm of a coreutils line is told by the digest's length. Lines that fit neither
//! notation (comments, PGP armour, blank lines) are skipped; a file with no entry at all is
//! refused, so a page of HTML at the checksums URL reads as "unknown format", not as "no
//! release".

pub mod signature;
pub mod signed;

use crate::crd::HashAlgorithm;

/// One file a checksums file vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub file: String,
    pub algorithm: HashAlgorithm,
    /// Lower-case hex.
    pub digest: String,
}

/// Why a checksums file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumsError {
    #[error(
        "no line of the checksums file is in a format glint reads (`HASH  FILE` as sha256sum writes it, or `SHA256 (FILE) = HASH`); is the URL a checksums file?"
    )]
    UnknownFormat,
}

/// Every entry of a checksums file, in file order.
pub fn parse(text: &str) -> Result<Vec<Entry>, ChecksumsError> {
    let entries: Vec<Entry> = text
        .lines()
        .filter_map(|line| tagged(line).or_else(|| coreutils(line)))
        .collect();
    if entries.is_empty() {
        return Err(ChecksumsError::UnknownFormat);
    }
    Ok(entries)
}

/// `SHA256 (NAME) = HEX`.
fn tagged(line: &str) -> Option<Entry> {
    let (tag, rest) = line.trim().split_once(" (")?;
    let (file, digest) = rest.rsplit_once(") = ")?;
    let algorithm = match tag {
        "MD5" => HashAlgorithm::Md5,
        "SHA1" => HashAlgorithm::Sha1,
        "SHA256" => HashAlgorithm::Sha256,
        "SHA512" => HashAlgorithm::Sha512,
        _ => return None,
    };
    entry(file, algorithm, digest)
}

/// `HEX  NAME` or `HEX *NAME`.
fn coreutils(line: &str) -> Option<Entry> {
    let (digest, rest) = line.trim().split_once(char::is_whitespace)?;
    let file = rest.trim_start();
    let file = file.strip_prefix('*').unwrap_or(file);
    let algorithm = match digest.len() {
        32 => HashAlgorithm::Md5,
        40 => HashAlgorithm::Sha1,
        64 => HashAlgorithm::Sha256,
        128 => HashAlgorithm::Sha512,
        _ => return None,
    };
    entry(file, algorithm, digest)
}

fn entry(file: &str, algorithm: HashAlgorithm, digest: &str) -> Option<Entry> {
    let hex = digest.trim();
    let well_formed = !file.is_empty()
        && hex.len() == expected_len(algorithm)
        && hex.bytes().all(|byte| byte.is_ascii_hexdigit());
    well_formed.then(|| Entry {
        file: file.to_string(),
        algorithm,
        digest: hex.to_ascii_lowercase(),
    })
}

fn expected_len(algorithm: HashAlgorithm) -> usize {
    match algorithm {
        HashAlgorithm::Md5 => 32,
        HashAlgorithm::Sha1 => 40,
        HashAlgorithm::Sha256 => 64,
        HashAlgorithm::Sha512 => 128,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA256: &str = "6b6e8e5a8a1c2f7e5e9a7a4c3f1d2b0a9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b";

    fn sha512() -> String {
        SHA256.repeat(2)
    }

    #[test]
    fn each_distributions_notation_is_read() {
        let ubuntu = format!(
            "{SHA256} *ubuntu-24.04-server-cloudimg-amd64.img\n{SHA256} *ubuntu-24.04-server-cloudimg-arm64.img\n"
        );
        let debian = format!("{}  debian-12-genericcloud-amd64.qcow2\n", sha512());
        let fedora = format!(
            "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n# Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2: 491716608 bytes\nSHA256 (Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2) = {SHA256}\n-----BEGIN PGP SIGNATURE-----\n\niQIzBAEBCAAdFiEE\n-----END PGP SIGNATURE-----\n"
        );
        let cirros = "443b7623e27ecf03dc9e01ee93f67afe  cirros-0.6.2-x86_64-disk.img\n";
        type Row = (&'static str, String, Vec<(&'static str, HashAlgorithm)>);
        let rows: Vec<Row> = vec![
            (
                "Ubuntu SHA256SUMS (binary mode)",
                ubuntu,
                vec![
                    (
                        "ubuntu-24.04-server-cloudimg-amd64.img",
                        HashAlgorithm::Sha256,
                    ),
                    (
                        "ubuntu-24.04-server-cloudimg-arm64.img",
                        HashAlgorithm::Sha256,
                    ),
                ],
            ),
            (
                "Debian SHA512SUMS",
                debian,
                vec![("debian-12-genericcloud-amd64.qcow2", HashAlgorithm::Sha512)],
            ),
            (
                "Fedora CHECKSUM, clear-signed",
                fedora,
                vec![(
                    "Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2",
                    HashAlgorithm::Sha256,
                )],
            ),
            (
                "CirrOS MD5SUMS",
                cirros.to_string(),
                vec![("cirros-0.6.2-x86_64-disk.img", HashAlgorithm::Md5)],
            ),
        ];
        for (what, text, expected) in rows {
            let entries = parse(&text).unwrap_or_else(|err| panic!("{what}: {err}"));
            let found: Vec<(&str, HashAlgorithm)> = entries
                .iter()
                .map(|entry| (entry.file.as_str(), entry.algorithm))
                .collect();
            assert_eq!(found, expected, "{what}");
        }
    }

    #[test]
    fn digests_come_back_lower_case_and_malformed_lines_are_skipped() {
        let text = format!(
            "{}  upper.img\nzz{}  not-hex.img\n{SHA256}\n# comment\nSHA384 (other.img) = abc\n",
            SHA256.to_ascii_uppercase(),
            &SHA256[2..]
        );
        let entries = parse(&text).expect("one good line");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].file, "upper.img");
        assert_eq!(entries[0].digest, SHA256);
    }

    #[test]
    fn a_file_without_any_entry_is_an_unknown_format() {
        for text in [
            "",
            "<html><body>Not Found</body></html>",
            "# only comments\n",
        ] {
            assert_eq!(parse(text), Err(ChecksumsError::UnknownFormat), "{text:?}");
        }
    }
}
