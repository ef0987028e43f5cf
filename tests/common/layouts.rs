//! Distributions' mirror layouts, laid out in a folder exactly as they publish them (folder
//! names, file names, checksums files in their own notation, files that are not releases
//! beside them), so a series is tested against what a mirror serves, not a fixture of glint's.

use std::path::Path;

use sha2::Digest;

/// One way a distribution publishes its cloud images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// CirrOS: `0.6.9/`, `0.6.10/` folders, each with MD5SUMS listing every architecture.
    CirrosFolders,
    /// Debian: dated folders `20241201-1949/` with SHA512SUMS, beside `latest/` and `daily/`.
    DebianDated,
    /// Debian's `latest/`: `debian-12-generic-amd64.raw`, whose name never changes.
    DebianLatest,
    /// Ubuntu's `noble/current/`: SHA256SUMS in binary mode (`HASH *FILE`), a name that never
    /// changes.
    UbuntuCurrent,
    /// Fedora: one clear-signed `Fedora-Cloud-41-1.N-x86_64-CHECKSUM` per compose, beside the
    /// images, in BSD tag notation.
    FedoraComposes,
    /// AlmaLinux: one CHECKSUM listing dated images and a `-latest` alias of the newest.
    AlmaLatestAlias,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write(path: &Path, data: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mirror folder");
    }
    std::fs::write(path, data).expect("mirror file");
}

/// Sets a file's modification time, which web servers send as Last-Modified.
fn touch(path: &Path, seconds_since_epoch: u64) {
    let file = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open to touch");
    file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds_since_epoch))
        .expect("set mtime");
}

impl Layout {
    /// The release `n` (1, 2, 3, ...) of this layout: its version as the mirror names it
    /// (`None` where only Last-Modified can tell).
    pub fn version(self, n: u32) -> Option<String> {
        match self {
            Self::CirrosFolders => Some(format!("0.6.{}", n + 8)),
            Self::DebianDated => Some(format!("2024120{n}-1949")),
            Self::FedoraComposes => Some(format!("41-1.{}", [0, 4, 5, 10][n as usize % 4])),
            Self::AlmaLatestAlias => Some(format!("9.{n}-2024110{n}")),
            Self::DebianLatest | Self::UbuntuCurrent => None,
        }
    }

    /// The version glint gives release `n` of a name that never changes: its mtime.
    pub fn modified_version(self, n: u32) -> String {
        format!("2024120{n}-120000")
    }

    fn modified_at(n: u32) -> u64 {
        // 2024-12-0N 12:00:00 UTC.
        1_733_011_200 + u64::from(n - 1) * 86_400 + 12 * 3600
    }

    /// The spec.checksums block (YAML, indented for spec) for a mirror at `base` (ending /).
    pub fn checksums_spec(self, base: &str) -> String {
        let (url, folders, file, pattern) = match self {
            Self::CirrosFolders => (
                base.to_string(),
                Some(r"(?P<version>[0-9]+\.[0-9]+\.[0-9]+)"),
                Some("MD5SUMS"),
                r"cirros-(?P<version>[0-9.]+)-x86_64-disk\.img",
            ),
            Self::DebianDated => (
                format!("{base}images/cloud/bookworm/"),
                Some(r"(?P<version>[0-9]{8}-[0-9]{4})"),
                Some("SHA512SUMS"),
                r"debian-12-generic-amd64-[0-9]{8}-[0-9]{4}\.raw",
            ),
            Self::DebianLatest => (
                format!("{base}images/cloud/bookworm/latest/SHA512SUMS"),
                None,
                None,
                r"debian-12-generic-amd64\.raw",
            ),
            Self::UbuntuCurrent => (
                format!("{base}noble/current/SHA256SUMS"),
                None,
                None,
                r"noble-server-cloudimg-amd64\.img",
            ),
            Self::FedoraComposes => (
                format!("{base}releases/41/Cloud/x86_64/images/"),
                None,
                Some(r"Fedora-Cloud-(?P<version>41-[0-9.]+)-x86_64-CHECKSUM"),
                r"Fedora-Cloud-Base-Generic-41-[0-9.]+\.x86_64\.raw",
            ),
            Self::AlmaLatestAlias => (
                format!("{base}almalinux/9/cloud/x86_64/images/CHECKSUM"),
                None,
                None,
                r"AlmaLinux-9-GenericCloud-(?P<version>[0-9.]+-[0-9]+|latest)\.x86_64\.raw",
            ),
        };
        let mut yaml = format!("  checksums:\n    url: '{url}'\n    pattern: '{pattern}'\n");
        if let Some(folders) = folders {
            yaml.push_str(&format!("    folders: '{folders}'\n"));
        }
        if let Some(file) = file {
            yaml.push_str(&format!("    file: '{file}'\n"));
        }
        yaml
    }

    /// Publishes release `n` with `data` into the mirror folder `root`, as the distribution
    /// would; `honest` false lists a wrong digest for it. Returns the digest glint will record
    /// (`ALGORITHM:HEX` of the listed hash, when honest).
    pub fn publish(self, root: &Path, n: u32, data: &[u8], honest: bool) -> String {
        let sha256 = hex(&sha2::Sha256::digest(data));
        let sha512 = hex(&sha2::Sha512::digest(data));
        let md5 = hex(&md5::Md5::digest(data));
        let listed = |real: &str| {
            if honest {
                real.to_string()
            } else {
                "0".repeat(real.len())
            }
        };
        match self {
            Self::CirrosFolders => {
                let version = self.version(n).unwrap_or_default();
                let folder = root.join(&version);
                let image = format!("cirros-{version}-x86_64-disk.img");
                let other = format!("cirros-{version}-aarch64-disk.img");
                write(&folder.join(&image), data);
                write(&folder.join(&other), b"another architecture");
                let other_md5 = hex(&md5::Md5::digest(b"another architecture"));
                write(
                    &folder.join("MD5SUMS"),
                    format!("{other_md5}  {other}\n{}  {image}\n", listed(&md5)).as_bytes(),
                );
                format!("md5:{}", listed(&md5))
            }
            Self::DebianDated => {
                let version = self.version(n).unwrap_or_default();
                let bookworm = root.join("images/cloud/bookworm");
                let folder = bookworm.join(&version);
                let image = format!("debian-12-generic-amd64-{version}.raw");
                write(&folder.join(&image), data);
                write(
                    &folder.join(format!("debian-12-generic-amd64-{version}.json")),
                    b"{}",
                );
                write(
                    &folder.join("SHA512SUMS"),
                    format!("{}  {image}\n", listed(&sha512)).as_bytes(),
                );
                // The aliases Debian keeps beside the dated folders.
                write(&bookworm.join("latest/debian-12-generic-amd64.raw"), data);
                write(
                    &bookworm.join("daily/20241231-0000/README"),
                    b"daily builds",
                );
                format!("sha512:{}", listed(&sha512))
            }
            Self::DebianLatest => {
                let latest = root.join("images/cloud/bookworm/latest");
                let image = latest.join("debian-12-generic-amd64.raw");
                write(&image, data);
                touch(&image, Self::modified_at(n));
                write(
                    &latest.join("SHA512SUMS"),
                    format!(
                        "{}  debian-12-generic-amd64.raw\n{}  debian-12-generic-arm64.raw\n",
                        listed(&sha512),
                        "1".repeat(128)
                    )
                    .as_bytes(),
                );
                format!("sha512:{}", listed(&sha512))
            }
            Self::UbuntuCurrent => {
                let current = root.join("noble/current");
                let image = current.join("noble-server-cloudimg-amd64.img");
                write(&image, data);
                touch(&image, Self::modified_at(n));
                write(
                    &current.join("SHA256SUMS"),
                    format!(
                        "{} *noble-server-cloudimg-amd64.img\n{} *noble-server-cloudimg-arm64.img\n",
                        listed(&sha256),
                        "2".repeat(64)
                    )
                    .as_bytes(),
                );
                format!("sha256:{}", listed(&sha256))
            }
            Self::FedoraComposes => {
                let version = self.version(n).unwrap_or_default();
                let images = root.join("releases/41/Cloud/x86_64/images");
                let image = format!("Fedora-Cloud-Base-Generic-{version}.x86_64.raw");
                write(&images.join(&image), data);
                write(
                    &images.join(format!("Fedora-Cloud-{version}-x86_64-CHECKSUM")),
                    format!(
                        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n# {image}: {} bytes\nSHA256 ({image}) = {}\n-----BEGIN PGP SIGNATURE-----\n\niQIzBAEBCAAdFiEE\n-----END PGP SIGNATURE-----\n",
                        data.len(),
                        listed(&sha256)
                    )
                    .as_bytes(),
                );
                format!("sha256:{}", listed(&sha256))
            }
            Self::AlmaLatestAlias => {
                let version = self.version(n).unwrap_or_default();
                let images = root.join("almalinux/9/cloud/x86_64/images");
                let image = format!("AlmaLinux-9-GenericCloud-{version}.x86_64.raw");
                write(&images.join(&image), data);
                write(
                    &images.join("AlmaLinux-9-GenericCloud-latest.x86_64.raw"),
                    data,
                );
                let sums = images.join("CHECKSUM");
                let earlier: String = std::fs::read_to_string(&sums)
                    .unwrap_or_default()
                    .lines()
                    .filter(|line| !line.contains("-latest.") && !line.contains(&image))
                    .map(|line| format!("{line}\n"))
                    .collect();
                let digest = listed(&sha256);
                write(
                    &sums,
                    format!(
                        "{earlier}SHA256 ({image}) = {digest}\nSHA256 (AlmaLinux-9-GenericCloud-latest.x86_64.raw) = {digest}\n"
                    )
                    .as_bytes(),
                );
                format!("sha256:{digest}")
            }
        }
    }
}
