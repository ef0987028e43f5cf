//! Conversion by glint (`spec.source.convertTo`, `conversion: glint`): what glint checks before
//! it lets qemu-img near a file from outside, and how it runs qemu-img.
//!
//! ```text
//! source ─► scratch/source ─► sniff (is it what diskFormat says?) ─► qemu-img info (backing
//!   file? data file? VMDK type? size within the scratch limit?) ─► qemu-img convert
//!   ─► scratch/converted ─► sniff again (no image hidden in the output) ─► upload
//! ```
//!
//! The checks are pure and table-tested; qemu-img runs with `-f` (never probing the format)
//! and, for `info`, under the same address-space and CPU limits Glance gives it. The same
//! checks Glance's own image_conversion plugin makes are made here, so an image refused by one
//! is refused by the other.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::glance::DiskFormat;
use crate::reason::Reason;

/// The default bound on a conversion's scratch space (source plus converted image).
pub const DEFAULT_SCRATCH_LIMIT: u64 = 20 << 30;
/// Bytes read from the start of a file to tell its format.
pub const HEAD_LEN: usize = 4096;
/// A VHD's footer: its last 512 bytes (fixed VHDs have no header).
pub const TAIL_LEN: usize = 512;
/// VMDK create types glint converts: the single-file ones. The others name extent files
/// beside the descriptor, which qemu-img would open.
const VMDK_TYPES: [&str; 2] = ["monolithicSparse", "streamOptimized"];
/// Limits on `qemu-img info` (a crafted header must not eat the controller's memory).
const INFO_ADDRESS_SPACE: u64 = 1 << 30;
const INFO_CPU_SECONDS: u64 = 30;

/// Where conversions may write, and how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScratchSpace {
    /// A folder glint may fill (default: the system's temporary folder).
    pub dir: Option<PathBuf>,
    /// The most one conversion may hold at once: downloaded source plus converted image.
    pub limit_bytes: u64,
}

impl Default for ScratchSpace {
    fn default() -> Self {
        Self {
            dir: None,
            limit_bytes: DEFAULT_SCRATCH_LIMIT,
        }
    }
}

impl ScratchSpace {
    /// `glint plan/apply`: `$GLINT_CONVERSION_SCRATCH_DIR` and `$GLINT_CONVERSION_SCRATCH_LIMIT`,
    /// the same variables as `glint run`'s flags.
    pub fn from_env() -> Result<Self, String> {
        let limit_bytes = match std::env::var("GLINT_CONVERSION_SCRATCH_LIMIT") {
            Ok(text) => {
                parse_size(&text).map_err(|err| format!("GLINT_CONVERSION_SCRATCH_LIMIT: {err}"))?
            }
            Err(_) => DEFAULT_SCRATCH_LIMIT,
        };
        Ok(Self {
            dir: std::env::var_os("GLINT_CONVERSION_SCRATCH_DIR").map(PathBuf::from),
            limit_bytes,
        })
    }

    /// The folder of one image's conversion, made empty.
    pub fn folder_for(&self, image_id: &str) -> std::io::Result<Scratch> {
        let base = self.dir.clone().unwrap_or_else(std::env::temp_dir);
        let path = base.join(format!("glint-convert-{image_id}"));
        // A folder left by a killed process holds nothing worth keeping.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)?;
        Ok(Scratch { path })
    }
}

/// One conversion's folder, removed with everything in it when dropped.
pub struct Scratch {
    pub path: PathBuf,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Why a conversion by glint did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error(
        "the source is {found} data, not {claimed} as spec.diskFormat says: set diskFormat: {found} (or fix spec.source.url)"
    )]
    FormatMismatch {
        claimed: &'static str,
        found: &'static str,
    },
    #[error(
        "refused: the {format} image names a backing file ({name}), and converting it would read that file on glint's host; publish a flattened image (qemu-img convert without -B)"
    )]
    BackingFile { format: &'static str, name: String },
    #[error(
        "refused: the qcow2 image keeps its data in an external data file ({name}), which converting would read on glint's host"
    )]
    DataFile { name: String },
    #[error(
        "refused: a VMDK of create-type {create_type:?}; glint converts only single-file VMDKs ({})",
        VMDK_TYPES.join(", ")
    )]
    VmdkType { create_type: String },
    #[error(
        "refused: after conversion to {target} the data reads as {found}: an image hidden inside another"
    )]
    Hidden {
        target: &'static str,
        found: &'static str,
    },
    #[error(
        "converting needs {needed} bytes of scratch space (the source's {source_bytes} plus the converted image's {converted_bytes}), more than the limit of {limit} bytes: raise the limit (Helm value conversion.scratchLimit, flag --conversion-scratch-limit) or let Glance convert (spec.source.conversion: glance)"
    )]
    ScratchLimit {
        needed: u64,
        source_bytes: u64,
        converted_bytes: u64,
        limit: u64,
    },
    #[error("glint cannot convert here: {0}")]
    ToolMissing(String),
    #[error("qemu-img {step} failed: {detail}")]
    Tool { step: &'static str, detail: String },
    #[error("the scratch folder failed: {0} (will retry)")]
    Scratch(String),
}

impl ConvertError {
    pub fn reason(&self) -> Reason {
        match self {
            Self::FormatMismatch { .. } => Reason::FormatMismatch,
            Self::BackingFile { .. }
            | Self::DataFile { .. }
            | Self::VmdkType { .. }
            | Self::Hidden { .. } => Reason::UnsafeImage,
            Self::ScratchLimit { .. } => Reason::ScratchLimitExceeded,
            Self::ToolMissing(_) | Self::Tool { .. } | Self::Scratch(_) => Reason::ConversionFailed,
        }
    }

    /// Only the scratch folder can get better by itself (space freed); the data stays what
    /// it is, and a missing tool stays missing until the operator acts.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Scratch(_))
    }
}

/// A size as Kubernetes quantities write it: bytes, or with a suffix Ki, Mi, Gi, Ti (powers
/// of 1024) or k, M, G, T (powers of 1000).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (for example 20Gi or 500Mi)"))?;
    let unit: u64 = match suffix {
        "" => 1,
        "k" => 1000,
        "M" => 1000_u64.pow(2),
        "G" => 1000_u64.pow(3),
        "T" => 1000_u64.pow(4),
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        other => {
            return Err(format!(
                "unknown size suffix {other:?} in {text:?}: use Ki, Mi, Gi or Ti"
            ));
        }
    };
    number
        .checked_mul(unit)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// qemu-img's name of a Glance disk format (`vhd` is qemu's `vpc`).
pub fn qemu_format(format: &DiskFormat) -> Option<&'static str> {
    Some(match format {
        DiskFormat::Raw => "raw",
        DiskFormat::Qcow2 => "qcow2",
        DiskFormat::Vmdk => "vmdk",
        DiskFormat::Vhd => "vpc",
        DiskFormat::Vhdx => "vhdx",
        DiskFormat::Vdi => "vdi",
        _ => return None,
    })
}

/// The format a file's first bytes and last 512 bytes say it is, in Glance's words; "raw"
/// when none of the convertible formats' signatures is there.
pub fn sniff(head: &[u8], tail: &[u8]) -> &'static str {
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    if at(0, b"QFI\xfb") {
        "qcow2"
    } else if at(0, b"KDMV") || at(0, b"# Disk DescriptorFile") {
        "vmdk"
    } else if at(0, b"vhdxfile") {
        "vhdx"
    } else if at(0x40, &[0x7f, 0x10, 0xda, 0xbe]) {
        "vdi"
    } else if at(0, b"conectix") || tail.starts_with(b"conectix") {
        "vhd"
    } else {
        "raw"
    }
}

/// What `qemu-img info --output=json` says, as far as glint needs it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct QemuInfo {
    #[serde(default)]
    pub format: String,
    #[serde(default)]
    pub virtual_size: u64,
    #[serde(default)]
    pub backing_filename: Option<String>,
    #[serde(default)]
    pub format_specific: Option<FormatSpecific>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct FormatSpecific {
    #[serde(default)]
    pub data: serde_json::Value,
}

/// The checks on `qemu-img info` of the downloaded source; the bytes the converted image
/// will take (its virtual size: a raw image is that long, a qcow2 at most about that).
pub fn check_info(
    info: &QemuInfo,
    claimed: &'static str,
    source_bytes: u64,
    limit: u64,
) -> Result<u64, ConvertError> {
    let found = match info.format.as_str() {
        "vpc" => "vhd",
        "qcow2" => "qcow2",
        "vmdk" => "vmdk",
        "vhdx" => "vhdx",
        "vdi" => "vdi",
        "raw" => "raw",
        _ => "unknown",
    };
    if found != claimed {
        return Err(ConvertError::FormatMismatch { claimed, found });
    }
    if let Some(name) = &info.backing_filename {
        return Err(ConvertError::BackingFile {
            format: claimed,
            name: name.clone(),
        });
    }
    let data = info.format_specific.as_ref().map(|specific| &specific.data);
    if let Some(name) = data.and_then(|data| data["data-file"].as_str()) {
        return Err(ConvertError::DataFile {
            name: name.to_string(),
        });
    }
    if claimed == "vmdk" {
        let create_type = data
            .and_then(|data| data["create-type"].as_str())
            .unwrap_or_default();
        if !VMDK_TYPES.contains(&create_type) {
            return Err(ConvertError::VmdkType {
                create_type: create_type.to_string(),
            });
        }
    }
    let converted_bytes = info.virtual_size;
    let needed = source_bytes.saturating_add(converted_bytes);
    if needed > limit {
        return Err(ConvertError::ScratchLimit {
            needed,
            source_bytes,
            converted_bytes,
            limit,
        });
    }
    Ok(converted_bytes)
}

/// The converted file must be what was asked for: a raw output that reads as qcow2 (or any
/// other format) was an image inside an image.
pub fn check_output(target: &'static str, head: &[u8], tail: &[u8]) -> Result<(), ConvertError> {
    let found = sniff(head, tail);
    if found == target {
        Ok(())
    } else {
        Err(ConvertError::Hidden { target, found })
    }
}

/// The first [`HEAD_LEN`] and last [`TAIL_LEN`] bytes of a file.
pub fn head_and_tail(path: &Path) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut head = Vec::with_capacity(HEAD_LEN);
    (&mut file).take(HEAD_LEN as u64).read_to_end(&mut head)?;
    let mut tail = Vec::with_capacity(TAIL_LEN);
    if len >= TAIL_LEN as u64 {
        file.seek(SeekFrom::Start(len - TAIL_LEN as u64))?;
        file.take(TAIL_LEN as u64).read_to_end(&mut tail)?;
    }
    Ok((head, tail))
}

/// `qemu-img info` of `path`, read as `format`, under Glance's limits.
pub async fn info(path: &Path, format: &str) -> Result<QemuInfo, ConvertError> {
    let mut command = qemu_img();
    command
        .args(["info", "-f", format, "--output=json"])
        .arg(path);
    limit_resources(&mut command);
    let output = run(command, "info", Duration::from_secs(INFO_CPU_SECONDS * 2)).await?;
    serde_json::from_slice(&output).map_err(|err| ConvertError::Tool {
        step: "info",
        detail: format!("unreadable answer: {err}"),
    })
}

/// `qemu-img convert` from `source` (read as `from`) to `target` in format `to`.
pub async fn convert(
    source: &Path,
    from: &str,
    target: &Path,
    to: &str,
) -> Result<(), ConvertError> {
    let mut command = qemu_img();
    command
        .args(["convert", "-f", from, "-O", to])
        .arg(source)
        .arg(target);
    // A conversion's time grows with the image; the transfer's own deadline bounds it.
    run(command, "convert", Duration::from_secs(6 * 3600))
        .await
        .map(drop)
}

fn qemu_img() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(
        std::env::var_os("GLINT_QEMU_IMG").unwrap_or_else(|| "qemu-img".into()),
    );
    command
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    command
}

async fn run(
    mut command: tokio::process::Command,
    step: &'static str,
    deadline: Duration,
) -> Result<Vec<u8>, ConvertError> {
    let running = command.output();
    let output = match tokio::time::timeout(deadline, running).await {
        Err(_) => {
            return Err(ConvertError::Tool {
                step,
                detail: format!("no answer within {} s", deadline.as_secs()),
            });
        }
        Ok(Err(err)) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConvertError::ToolMissing(
                "qemu-img is not installed (Debian's qemu-utils; glint's container image has it)"
                    .to_string(),
            ));
        }
        Ok(Err(err)) => {
            return Err(ConvertError::Tool {
                step,
                detail: err.to_string(),
            });
        }
        Ok(Ok(output)) => output,
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(ConvertError::Tool {
            step,
            detail: format!("{} ({})", stderr.trim(), output.status),
        });
    }
    Ok(output.stdout)
}

/// The address-space and CPU limits Glance puts on `qemu-img info` (oslo's prlimit).
#[allow(unsafe_code)]
fn limit_resources(command: &mut tokio::process::Command) {
    #[cfg(target_os = "linux")]
    {
        let limits = [
            (libc::RLIMIT_AS, INFO_ADDRESS_SPACE),
            (libc::RLIMIT_CPU, INFO_CPU_SECONDS),
        ];
        // SAFETY: setrlimit is async-signal-safe, and the closure touches nothing else
        // between fork and exec.
        unsafe {
            command.pre_exec(move || {
                for (resource, value) in limits {
                    let limit = libc::rlimit {
                        rlim_cur: value,
                        rlim_max: value,
                    };
                    if libc::setrlimit(resource, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(format: &str, virtual_size: u64, extra: serde_json::Value) -> QemuInfo {
        let mut json = serde_json::json!({"format": format, "virtual-size": virtual_size});
        if let (Some(json), Some(extra)) = (json.as_object_mut(), extra.as_object()) {
            json.extend(extra.clone());
        }
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_files_format_is_told_by_its_signature() {
        let mut vdi = vec![0u8; 0x50];
        vdi[0x40..0x44].copy_from_slice(&[0x7f, 0x10, 0xda, 0xbe]);
        let rows: Vec<(&str, Vec<u8>, Vec<u8>, &str)> = vec![
            ("qcow2", b"QFI\xfb\0\0\0\x03".to_vec(), vec![], "qcow2"),
            ("sparse vmdk", b"KDMV\x01\0\0\0".to_vec(), vec![], "vmdk"),
            (
                "vmdk descriptor",
                b"# Disk DescriptorFile\nversion=1".to_vec(),
                vec![],
                "vmdk",
            ),
            ("vhdx", b"vhdxfile".to_vec(), vec![], "vhdx"),
            ("vdi", vdi, vec![], "vdi"),
            ("dynamic vhd", b"conectix".to_vec(), vec![], "vhd"),
            (
                "fixed vhd: footer only",
                vec![0; 64],
                b"conectix\0\0".to_vec(),
                "vhd",
            ),
            ("zeros", vec![0; 64], vec![0; 512], "raw"),
            ("too short for any signature", b"QF".to_vec(), vec![], "raw"),
        ];
        for (what, head, tail, expected) in rows {
            assert_eq!(sniff(&head, &tail), expected, "{what}");
        }
    }

    #[test]
    fn qemu_info_is_checked_for_format_backing_files_vmdk_types_and_scratch() {
        let limit = 1000;
        type Row = (
            &'static str,
            QemuInfo,
            &'static str,
            u64,
            Result<u64, Reason>,
        );
        let rows: Vec<Row> = vec![
            (
                "a plain qcow2 fits",
                info("qcow2", 600, serde_json::json!({})),
                "qcow2",
                300,
                Ok(600),
            ),
            (
                "qemu calls a vhd vpc",
                info("vpc", 100, serde_json::json!({})),
                "vhd",
                10,
                Ok(100),
            ),
            (
                "raw data claimed as qcow2",
                info("raw", 100, serde_json::json!({})),
                "qcow2",
                100,
                Err(Reason::FormatMismatch),
            ),
            (
                "a backing file",
                info(
                    "qcow2",
                    100,
                    serde_json::json!({"backing-filename": "/etc/shadow"}),
                ),
                "qcow2",
                10,
                Err(Reason::UnsafeImage),
            ),
            (
                "an external data file",
                info(
                    "qcow2",
                    100,
                    serde_json::json!({"format-specific": {"type": "qcow2", "data": {"data-file": "/dev/sda"}}}),
                ),
                "qcow2",
                10,
                Err(Reason::UnsafeImage),
            ),
            (
                "a monolithic sparse vmdk",
                info(
                    "vmdk",
                    100,
                    serde_json::json!({"format-specific": {"type": "vmdk", "data": {"create-type": "monolithicSparse"}}}),
                ),
                "vmdk",
                10,
                Ok(100),
            ),
            (
                "a vmdk whose extents are other files",
                info(
                    "vmdk",
                    100,
                    serde_json::json!({"format-specific": {"type": "vmdk", "data": {"create-type": "monolithicFlat"}}}),
                ),
                "vmdk",
                10,
                Err(Reason::UnsafeImage),
            ),
            (
                "source and result over the limit",
                info("qcow2", 900, serde_json::json!({})),
                "qcow2",
                101,
                Err(Reason::ScratchLimitExceeded),
            ),
            (
                "a virtual size near u64::MAX does not overflow",
                info("qcow2", u64::MAX, serde_json::json!({})),
                "qcow2",
                101,
                Err(Reason::ScratchLimitExceeded),
            ),
        ];
        for (what, info, claimed, source_bytes, expected) in rows {
            let got = check_info(&info, claimed, source_bytes, limit).map_err(|err| err.reason());
            assert_eq!(got, expected, "{what}");
        }
    }

    #[test]
    fn refusals_say_what_to_do() {
        let limit = check_info(
            &info("qcow2", 900, serde_json::json!({})),
            "qcow2",
            200,
            1000,
        )
        .unwrap_err()
        .to_string();
        assert!(
            limit.contains("1100 bytes") && limit.contains("conversion.scratchLimit"),
            "{limit}"
        );
        let mismatch = check_info(&info("raw", 1, serde_json::json!({})), "qcow2", 1, 1000)
            .unwrap_err()
            .to_string();
        assert!(mismatch.contains("set diskFormat: raw"), "{mismatch}");
    }

    #[test]
    fn a_raw_output_that_reads_as_qcow2_is_refused() {
        assert!(check_output("raw", &[0; 64], &[0; 512]).is_ok());
        assert_eq!(
            check_output("raw", b"QFI\xfb", &[]).map_err(|err| err.reason()),
            Err(Reason::UnsafeImage)
        );
        assert!(check_output("qcow2", b"QFI\xfb", &[]).is_ok());
    }

    #[test]
    fn sizes_read_like_kubernetes_quantities() {
        let rows: Vec<(&str, Result<u64, ()>)> = vec![
            ("1048576", Ok(1 << 20)),
            ("20Gi", Ok(20 << 30)),
            ("500Mi", Ok(500 << 20)),
            ("2G", Ok(2_000_000_000)),
            ("", Err(())),
            ("12Xi", Err(())),
            ("Gi", Err(())),
            ("99999999999999Ti", Err(())),
        ];
        for (text, expected) in rows {
            assert_eq!(parse_size(text).map_err(drop), expected, "{text:?}");
        }
    }

    #[test]
    fn a_scratch_folder_disappears_with_its_files() {
        let space = ScratchSpace {
            dir: Some(std::env::temp_dir()),
            limit_bytes: 1,
        };
        let id = format!("test-{}", std::process::id());
        let scratch = space.folder_for(&id).unwrap();
        std::fs::write(scratch.path.join("source"), b"data").unwrap();
        let path = scratch.path.clone();
        drop(scratch);
        assert!(!path.exists());
    }
}
