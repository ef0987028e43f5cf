//! The steps between a fetched checksums file and a digest glint believes, shared by a
//! series' check and an Image's `spec.source.hashFrom`: where a detached signature is, and
//! which of the file's lines speaks for one image file.

use super::Entry;
use crate::crd::HashAlgorithm;

/// The largest checksums file glint reads; distributions' are a few KiB.
pub const CHECKSUMS_LIMIT: usize = 1024 * 1024;

/// The largest detached signature glint reads; one signature is under 1 KiB.
pub const SIGNATURE_LIMIT: usize = 64 * 1024;

/// The URL of the detached signature that `detached` names beside `file`, `{file}` standing
/// for the checksums file's name (`{file}.gpg` beside `SHA256SUMS`). Refused unless it stays
/// in the same folder and is another file: a signature from elsewhere would let the mirror's
/// layout pick it.
pub fn detached_url(file: &url::Url, detached: &str) -> Result<url::Url, String> {
    let name = file
        .path_segments()
        .and_then(|mut segments| segments.next_back())
        .unwrap_or_default();
    let signature = file
        .join(&detached.replace("{file}", name))
        .map_err(|err| err.to_string())?;
    let folder = file.join("./").map_err(|err| err.to_string())?;
    let rest = signature.as_str().strip_prefix(folder.as_str());
    let beside = rest.is_some_and(|rest| !rest.is_empty() && !rest.contains('/'));
    if !beside || signature == *file {
        return Err(format!("it resolves to {signature}"));
    }
    Ok(signature)
}

/// The name an image file has in its checksums file: the last segment of its URL's path,
/// percent-decoded (`noble-server-cloudimg-amd64.img`).
pub fn file_name(source: &url::Url) -> Option<String> {
    let last = source.path_segments()?.next_back()?;
    let decoded = percent_encoding::percent_decode_str(last)
        .decode_utf8()
        .ok()?
        .into_owned();
    (!decoded.is_empty()).then_some(decoded)
}

/// The line for `file`, of the strongest algorithm the checksums file gives for it (some list
/// a file under two); none when the file is not listed.
pub fn line_for<'a>(entries: &'a [Entry], file: &str) -> Option<&'a Entry> {
    entries
        .iter()
        .filter(|entry| entry.file == file)
        .max_by_key(|entry| strength(entry.algorithm))
}

fn strength(algorithm: HashAlgorithm) -> u8 {
    match algorithm {
        HashAlgorithm::Md5 => 0,
        HashAlgorithm::Sha1 => 1,
        HashAlgorithm::Sha256 => 2,
        HashAlgorithm::Sha512 => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> url::Url {
        url::Url::parse(text).unwrap()
    }

    #[test]
    fn a_detached_signature_is_found_beside_its_checksums_file_and_nowhere_else() {
        let file = url("https://cloud-images.ubuntu.com/noble/20241210/SHA256SUMS");
        let cases = [
            (
                "{file}.gpg",
                Ok("https://cloud-images.ubuntu.com/noble/20241210/SHA256SUMS.gpg"),
            ),
            (
                "SHA256SUMS.sign",
                Ok("https://cloud-images.ubuntu.com/noble/20241210/SHA256SUMS.sign"),
            ),
            ("../{file}.gpg", Err(())),
            ("https://elsewhere.example/{file}.gpg", Err(())),
            ("", Err(())),
        ];
        for (detached, expected) in cases {
            let found = detached_url(&file, detached);
            match expected {
                Ok(want) => assert_eq!(found.map(String::from), Ok(want.to_string()), "{detached}"),
                Err(()) => assert!(found.is_err(), "{detached} must be refused: {found:?}"),
            }
        }
    }

    #[test]
    fn a_files_name_is_the_last_segment_of_its_url_decoded() {
        let cases = [
            (
                "https://cloud-images.ubuntu.com/noble/20241210/noble-server-cloudimg-amd64.img",
                Some("noble-server-cloudimg-amd64.img"),
            ),
            (
                "https://mirror.example/a/my%20image.qcow2",
                Some("my image.qcow2"),
            ),
            ("https://mirror.example/folder/", None),
        ];
        for (source, expected) in cases {
            assert_eq!(file_name(&url(source)).as_deref(), expected, "{source}");
        }
    }

    #[test]
    fn the_strongest_line_for_a_file_is_taken_and_other_files_lines_never() {
        let line = |file: &str, algorithm, digest: &str| Entry {
            file: file.to_string(),
            algorithm,
            digest: digest.to_string(),
        };
        let entries = [
            line("disk.img", HashAlgorithm::Sha256, "aa"),
            line("other.img", HashAlgorithm::Sha512, "bb"),
            line("disk.img", HashAlgorithm::Sha512, "cc"),
            line("disk.img", HashAlgorithm::Md5, "dd"),
        ];
        assert_eq!(
            line_for(&entries, "disk.img").map(|e| e.digest.as_str()),
            Some("cc")
        );
        assert_eq!(line_for(&entries, "missing.img"), None);
        assert_eq!(
            line_for(&entries, "disk"),
            None,
            "a name matches whole, not as a prefix"
        );
    }
}
