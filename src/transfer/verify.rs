//! The judgement after the data is in: did Glance store exactly what glint sent, or did its
//! import change the data on purpose? Pure, so every case is a table row.
//!
//! An upload (`PUT /file`) is stored as sent, so any other digest is corruption. An import
//! (glanceDirect, webDownload) runs the deployment's import plugins; `image_conversion`
//! (Ceph-backed clouds convert everything to raw) and `image_decompression` store other bytes
//! on purpose, and say so by changing `disk_format` or `size`. Then Glance's digests describe
//! the stored data, not what glint sent: glint has already checked `spec.source.hash` on the
//! way in and records the conversion instead of calling it a mismatch.

use super::pipeline::Sent;
use crate::crd::GlanceConversion;
use crate::glance::{DiskFormat, GlanceImage};

/// What Glance holds, compared with what glint sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Stored {
    /// Glance's checksum and os_hash_value are the digests of the bytes glint sent.
    AsSent,
    /// Glance's import stored other data on purpose (another format or size).
    Converted(GlanceConversion),
    /// Glance holds other bytes than glint sent, and nothing explains it: each entry names
    /// the digest, Glance's value and glint's.
    Mismatch(Vec<String>),
}

/// The judgement on streamed data (upload, or glanceDirect when `imported`).
pub(super) fn judge(
    sent: &Sent,
    declared: Option<&DiskFormat>,
    image: &GlanceImage,
    imported: bool,
) -> Stored {
    if imported && let Some(conversion) = conversion(declared, Some(sent.bytes_out), image) {
        return Stored::Converted(conversion);
    }
    let mut mismatches = Vec::new();
    if let Some(size) = image.size
        && size != sent.bytes_out
    {
        mismatches.push(format!("size {size}, glint sent {}", sent.bytes_out));
    }
    // Glance's md5 `checksum` is not compared: sha512 judges the same bytes, and computing
    // both cost glint a third more CPU. A Glance configured with another hashing_algorithm
    // is judged by size.
    if image.os_hash_algo.as_deref() == Some("sha512")
        && let Some(value) = &image.os_hash_value
        && *value != sent.sha512
    {
        mismatches.push(format!("sha512 {value}, glint sent {}", sent.sha512));
    }
    if mismatches.is_empty() {
        Stored::AsSent
    } else {
        Stored::Mismatch(mismatches)
    }
}

/// Whether an import changed the data: Glance stored another disk format than glint declared,
/// or another size than glint sent (`sent_bytes` is unknown for webDownload).
pub(super) fn conversion(
    declared: Option<&DiskFormat>,
    sent_bytes: Option<u64>,
    image: &GlanceImage,
) -> Option<GlanceConversion> {
    let stored_format = image.disk_format.as_ref();
    let format_changed = declared.is_some() && stored_format.is_some() && stored_format != declared;
    let size_changed = sent_bytes.is_some() && image.size.is_some() && image.size != sent_bytes;
    (format_changed || size_changed).then(|| GlanceConversion {
        by: Some("glance".to_string()),
        milliseconds: None,
        sent_format: declared.cloned(),
        stored_format: stored_format.cloned(),
        sent_bytes,
        stored_bytes: image.size,
    })
}

/// "from qcow2 to raw, 4.5 MB sent, 64 MB stored": a conversion in words for messages.
pub fn describe(conversion: &GlanceConversion) -> String {
    fn format(format: Option<&DiskFormat>) -> &str {
        format.map_or("unknown", DiskFormat::as_str)
    }
    let mut words = format!(
        "from {} to {}",
        format(conversion.sent_format.as_ref()),
        format(conversion.stored_format.as_ref())
    );
    if let Some(sent) = conversion.sent_bytes {
        words.push_str(&format!(", {sent} bytes sent"));
    }
    if let Some(stored) = conversion.stored_bytes {
        words.push_str(&format!(", {stored} bytes stored"));
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::decompress::Format;

    fn sent() -> Sent {
        Sent {
            bytes_in: 100,
            bytes_out: 100,
            format: Format::Plain,
            sha512: "s".into(),
        }
    }

    fn stored(change: impl FnOnce(&mut GlanceImage)) -> GlanceImage {
        let mut image: GlanceImage = serde_json::from_value(serde_json::json!({
            "id": "i", "status": "active", "visibility": "private", "disk_format": "qcow2",
            "size": 100, "checksum": "m", "os_hash_algo": "sha512", "os_hash_value": "s",
        }))
        .unwrap();
        change(&mut image);
        image
    }

    fn converted(to: &str, stored_bytes: u64) -> Stored {
        Stored::Converted(GlanceConversion {
            by: Some("glance".to_string()),
            milliseconds: None,
            sent_format: Some(DiskFormat::Qcow2),
            stored_format: Some(DiskFormat::from(to)),
            sent_bytes: Some(100),
            stored_bytes: Some(stored_bytes),
        })
    }

    #[test]
    fn stored_data_is_judged_by_route_format_size_and_digests() {
        let qcow2 = Some(DiskFormat::Qcow2);
        let rows: Vec<(&str, GlanceImage, bool, Stored)> = vec![
            (
                "an upload stored as sent",
                stored(|_| {}),
                false,
                Stored::AsSent,
            ),
            (
                "an import stored as sent",
                stored(|_| {}),
                true,
                Stored::AsSent,
            ),
            (
                "an import Glance converted to raw",
                stored(|i| {
                    i.disk_format = Some(DiskFormat::Raw);
                    i.size = Some(4096);
                    i.checksum = Some("other".into());
                    i.os_hash_value = Some("other".into());
                }),
                true,
                converted("raw", 4096),
            ),
            (
                "an import Glance decompressed (same format, other size)",
                stored(|i| {
                    i.size = Some(300);
                    i.checksum = Some("other".into());
                }),
                true,
                converted("qcow2", 300),
            ),
            (
                "an upload never converts: other bytes are a mismatch",
                stored(|i| {
                    i.disk_format = Some(DiskFormat::Raw);
                    i.os_hash_value = Some("other".into());
                }),
                false,
                Stored::Mismatch(vec!["sha512 other, glint sent s".into()]),
            ),
            (
                "an upload stored with another size is a mismatch, whatever the digests",
                stored(|i| {
                    i.size = Some(99);
                    i.os_hash_algo = Some("sha256".into());
                }),
                false,
                Stored::Mismatch(vec!["size 99, glint sent 100".into()]),
            ),
            (
                "an import of the same format and size with other bytes is a mismatch",
                stored(|i| i.os_hash_value = Some("other".into())),
                true,
                Stored::Mismatch(vec!["sha512 other, glint sent s".into()]),
            ),
            (
                "a sha512 is compared only when Glance says it is one",
                stored(|i| {
                    i.os_hash_algo = Some("sha256".into());
                    i.os_hash_value = Some("other".into());
                }),
                false,
                Stored::AsSent,
            ),
        ];
        for (what, image, imported, expected) in rows {
            assert_eq!(
                judge(&sent(), qcow2.as_ref(), &image, imported),
                expected,
                "{what}"
            );
        }
    }

    #[test]
    fn without_a_declared_format_or_size_nothing_counts_as_a_conversion() {
        let raw = stored(|i| i.disk_format = Some(DiskFormat::Raw));
        assert_eq!(conversion(None, None, &raw), None);
        let sizeless = stored(|i| i.size = None);
        assert_eq!(
            conversion(Some(&DiskFormat::Qcow2), Some(5), &sizeless),
            None
        );
        assert!(conversion(Some(&DiskFormat::Qcow2), None, &raw).is_some());
    }

    #[test]
    fn a_conversion_reads_as_formats_and_sizes() {
        let Stored::Converted(conversion) = converted("raw", 4096) else {
            unreachable!()
        };
        assert_eq!(
            describe(&conversion),
            "from qcow2 to raw, 100 bytes sent, 4096 bytes stored"
        );
    }
}
