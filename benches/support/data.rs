//! The benchmark's source files: generated once into a cache folder, deterministic, reused
//! by later runs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{MIB, Result, err};

pub fn data_dir() -> PathBuf {
    std::env::temp_dir().join("glint-bench-transfer")
}

pub fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Writes `size` bytes from `fill` (called per 1 MiB block) to `path`, through a temporary
/// file so that an interrupted run never leaves a short file behind.
pub fn write_file(path: &Path, size: u64, mut fill: impl FnMut(&mut [u8])) -> Result<()> {
    if path.metadata().is_ok_and(|meta| meta.len() == size) {
        return Ok(());
    }
    let tmp = path.with_extension("tmp");
    let mut out = std::io::BufWriter::with_capacity(
        4 * MIB as usize,
        std::fs::File::create(&tmp).map_err(err)?,
    );
    let mut block = vec![0u8; MIB as usize];
    let mut written = 0;
    while written < size {
        fill(&mut block);
        let take = (size - written).min(MIB) as usize;
        out.write_all(&block[..take]).map_err(err)?;
        written += take as u64;
    }
    out.flush().map_err(err)?;
    drop(out);
    std::fs::rename(&tmp, path).map_err(err)
}

/// Incompressible data, like an encrypted or already compressed disk.
pub fn random_file(dir: &Path, size: u64) -> Result<PathBuf> {
    let path = dir.join(format!("random-{}m.raw", size / MIB));
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    write_file(&path, size, |block| {
        for word in block.chunks_exact_mut(8) {
            word.copy_from_slice(&xorshift(&mut state).to_le_bytes());
        }
    })?;
    Ok(path)
}

/// A disk-like mix that compresses about 3 to 4 times: per 64 KiB, 30 % zeros, 20 % random
/// bytes and 50 % text from a small vocabulary.
pub fn mixed_file(dir: &Path, size: u64) -> Result<PathBuf> {
    let path = dir.join(format!("mixed-{}m.raw", size / MIB));
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let words: Vec<Vec<u8>> = (0..64)
        .map(|_| {
            let len = 2 + (xorshift(&mut state) % 9) as usize;
            (0..len)
                .map(|_| b'a' + (xorshift(&mut state) % 26) as u8)
                .collect()
        })
        .collect();
    write_file(&path, size, |block| {
        for part in block.chunks_mut(64 * 1024) {
            match xorshift(&mut state) % 10 {
                0..=2 => part.fill(0),
                3..=4 => {
                    for byte in part.iter_mut() {
                        *byte = xorshift(&mut state) as u8;
                    }
                }
                _ => {
                    let mut at = 0;
                    while at < part.len() {
                        let roll = xorshift(&mut state);
                        let word = &words[(roll % 64) as usize];
                        for &byte in word
                            .iter()
                            .chain(if roll & 0x700 == 0 { b"\n" } else { b" " })
                        {
                            if at < part.len() {
                                part[at] = byte;
                                at += 1;
                            }
                        }
                    }
                }
            }
        }
    })?;
    Ok(path)
}

/// `raw` compressed with the `zstd` or `gzip` command (default levels), cached beside it.
pub fn compressed(raw: &Path, tool: &str, extension: &str) -> Result<PathBuf> {
    let path = PathBuf::from(format!("{}.{extension}", raw.display()));
    if path.exists() {
        return Ok(path);
    }
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let args: &[&str] = match tool {
        "zstd" => &["-q", "-c", "-T0"],
        _ => &["-n", "-c"],
    };
    let status = Command::new(tool)
        .args(args)
        .arg(raw)
        .stdout(std::fs::File::create(&tmp).map_err(err)?)
        .status()
        .map_err(|e| format!("cannot run {tool} (scripts/bench installs it): {e}"))?;
    if !status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("{tool} failed: {status}"));
    }
    std::fs::rename(&tmp, &path).map_err(err)?;
    Ok(path)
}

pub fn size_label(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else {
        format!("{} MiB", bytes / MIB)
    }
}
