//! Real disk images for tests, made by qemu-img (Debian's qemu-utils, which the test bed
//! installs): a sparse raw disk with 1 MiB of data, and the same disk in another format.

/// A raw disk of `virtual_size` bytes with 1 MiB of pseudo-random data, and the same disk as
/// `qemu_format` (qemu-img's names: qcow2, vmdk, vpc, vhdx, vdi); both as bytes.
pub fn disk_in(qemu_format: &str, virtual_size: u64, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let dir = std::env::temp_dir().join(format!("glint-disk-{}-{seed}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let raw = dir.join("disk.raw");
    let image = dir.join("disk.img");
    std::fs::write(&raw, super::pseudo_random_bytes(1024 * 1024, seed)).expect("data");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&raw)
        .and_then(|file| file.set_len(virtual_size))
        .expect("a sparse disk of the virtual size");
    let (raw_path, image_path) = (raw.display().to_string(), image.display().to_string());
    let mut args = vec!["convert", "-q", "-f", "raw", "-O", qemu_format];
    // A VHD rounds its size up to a disk geometry unless told to keep it exact.
    if qemu_format == "vpc" {
        args.extend(["-o", "force_size=on"]);
    }
    args.extend([raw_path.as_str(), image_path.as_str()]);
    qemu_img(&args);
    let bytes = (
        std::fs::read(&raw).expect("raw"),
        std::fs::read(&image).expect("image"),
    );
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

/// Runs qemu-img and insists that it succeeded.
pub fn qemu_img(args: &[&str]) {
    let status = std::process::Command::new("qemu-img")
        .args(args)
        .status()
        .expect("qemu-img (scripts/testbed installs qemu-utils)");
    assert!(status.success(), "qemu-img {args:?} failed");
}
