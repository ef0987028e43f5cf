//! `Image.spec.source`: where the image data comes from, how it is unpacked and checked, and
//! how it reaches Glance. Every field's doc comment is what `kubectl explain` shows.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Where the image data comes from. Immutable once set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
// webDownload hands the URL to Glance, which fetches it as it is: glint cannot unpack it, send
// credentials or trust a private CA on Glance's behalf, and can check only Glance's own
// (sha512) hash of it.
#[x_kube(
    validation = Rule::new("!has(self.method) || self.method != 'webDownload' || !has(self.decompress) || self.decompress == 'none'")
        .message("method webDownload stores the file as Glance fetches it: set decompress: none (or leave it out), or use method upload"),
    validation = Rule::new("!has(self.method) || self.method != 'webDownload' || !has(self.hash) || self.hash.algorithm == 'sha512'")
        .message("method webDownload can only check a sha512 hash (the one Glance computes): use a sha512 hash, or method upload"),
    validation = Rule::new("!has(self.method) || self.method != 'webDownload' || (!has(self.secretRef) && !has(self.caBundle))")
        .message("method webDownload cannot send credentials or trust a private CA: use method upload or glanceDirect"),
    validation = Rule::new("!(has(self.hash) && has(self.hashFrom))")
        .message("give the hash (source.hash) or where it is published (source.hashFrom), not both"),
    validation = Rule::new("!has(self.method) || self.method != 'webDownload' || !has(self.hashFrom)")
        .message("source.hashFrom is checked by glint as it streams the file, and with method webDownload Glance fetches it: use method upload or glanceDirect, or give a sha512 source.hash"),
    validation = Rule::new("!has(self.conversion) || has(self.convertTo)")
        .message("source.conversion says who converts: set source.convertTo too"),
    validation = Rule::new("!has(self.conversion) || self.conversion != 'glance' || (has(self.method) && (self.method == 'glanceDirect' || self.method == 'webDownload'))")
        .message("conversion glance runs Glance's image_conversion import plugin, which only imports run: set method glanceDirect (or webDownload)"),
    validation = Rule::new("!has(self.convertTo) || !has(self.method) || self.method != 'webDownload' || (has(self.conversion) && self.conversion == 'glance')")
        .message("with method webDownload glint never sees the data, so only Glance can convert it: set conversion: glance, or use method upload"),
)]
pub struct ImageSource {
    /// An http:// or https:// URL of the image file. glint fetches it only from addresses
    /// the controller's source policy allows: not loopback, link-local (cloud metadata) or the
    /// cluster's own ranges, unless the operator allowed them; refused URLs stall with reason
    /// SourceNotAllowed. A file: URL (absolute, or relative to the manifest's folder) is read
    /// by `glint plan` / `glint apply` only; the controller refuses it with SourceNotAllowed.
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.startsWith('http://') || self.startsWith('file:')")
        .message("source.url must be an http:// or https:// URL (or, for glint apply only, a file: URL)"))]
    #[schemars(length(max = 4096))]
    pub url: String,
    /// The expected hash of the file as downloaded (before decompression). A mismatch fails
    /// the transfer with reason HashMismatch, and no image turns active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<SourceHash>,
    /// Where the file's hash is published instead: the distribution's checksums file
    /// (SHA256SUMS, CHECKSUM), signed or not. glint reads it when a transfer starts, checks
    /// its signature first when signature is set, and takes the file's own line; the data is
    /// then checked against that hash as spec.source.hash would check it. Not with hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_from: Option<HashFrom>,
    /// A Secret in this namespace with credentials for the source: key authorization (the
    /// whole Authorization header value, e.g. "Bearer ..."), or keys username and password
    /// (basic auth); an optional key ca.crt adds a PEM CA bundle to trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SourceSecretRef>,
    /// How the file is unpacked, checked, converted and fetched (decompress, method,
    /// convertTo, conversion, caBundle, timeouts, maxRedirects): the options an ImageSeries
    /// gives each of its releases too.
    #[serde(flatten)]
    pub options: SourceOptions,
}

impl ImageSource {
    /// The signature spec.source.hashFrom asks for, if any: whose keys a transfer needs.
    pub fn hash_signature(&self) -> Option<&super::ChecksumsSignature> {
        self.hash_from.as_ref()?.signature.as_ref()
    }
}

/// How a source's file is fetched, unpacked and converted: the part of a source an Image and
/// an ImageSeries' releases share (one definition, so a new option reaches both).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SourceOptions {
    /// How to unpack the file on the way: auto (default: by its first bytes), none, gzip,
    /// xz, bzip2 or zstd. A corrupt or truncated archive fails with reason CorruptArchive and
    /// no image turns active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decompress: Option<Decompression>,
    /// How the data reaches Glance: auto (default: upload), upload (glint streams it into
    /// Glance), glanceDirect (glint stages it, then Glance imports it, so its import plugins
    /// such as format conversion run) or webDownload (Glance fetches the URL itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<TransferMethod>,
    /// PEM certificates to trust for an https source, in addition to the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub ca_bundle: Option<String>,
    /// How long to wait for the source's server to accept a connection (default 15s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s') && duration(self) <= duration('10m')")
        .message("connectTimeout must be between 1s and 10m"))]
    pub connect_timeout: Option<String>,
    /// How long a download may go without receiving a byte before it fails (default 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s') && duration(self) <= duration('1h')")
        .message("idleTimeout must be between 1s and 1h"))]
    pub idle_timeout: Option<String>,
    /// Convert the image on its way into Glance: raw (what Ceph-backed clouds need to clone
    /// images instead of copying them) or qcow2. spec.diskFormat then names the format of the
    /// source file (qcow2, vmdk, vhd, vhdx, vdi or raw), which is checked before anything is
    /// converted, and Glance's disk_format becomes convertTo. A file that is not what
    /// diskFormat says fails with reason FormatMismatch; a qcow2 with a backing or data file
    /// is refused (reason UnsafeImage), because converting it would read other files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convert_to: Option<ConvertTo>,
    /// Who converts: glint (default: glint converts in a bounded scratch folder with qemu-img,
    /// then uploads the result) or glance (Glance's image_conversion import plugin converts on
    /// import; needs method glanceDirect or webDownload, and a cloud whose operators enabled
    /// the plugin with output_format = convertTo, or the image is deactivated with reason
    /// ConversionNotDone). status.transfer.conversion says which one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion: Option<ConversionBy>,
    /// Redirects to follow, 0 to 5 (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 5))]
    pub max_redirects: Option<u8>,
}

/// The Secret with the source's credentials.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SourceSecretRef {
    /// Name of a Secret in the Image's namespace.
    #[x_kube(validation = Rule::new("size(self) > 0").message("secretRef.name must not be empty"))]
    pub name: String,
}

/// An expected hash.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "size(self.value) == (self.algorithm == 'md5' ? 32 : self.algorithm == 'sha1' ? 40 : self.algorithm == 'sha256' ? 64 : 128)"
).message("hash.value has the wrong length for hash.algorithm (md5: 32, sha1: 40, sha256: 64, sha512: 128 hex digits)"))]
pub struct SourceHash {
    /// md5, sha1, sha256 or sha512.
    pub algorithm: HashAlgorithm,
    /// The hash as lowercase hexadecimal.
    #[schemars(regex(pattern = r"^[0-9a-f]+$"))]
    pub value: String,
}

/// A checksums file that publishes the source's hash.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HashFrom {
    /// The checksums file's http:// or https:// URL, such as
    /// https://cloud-images.ubuntu.com/noble/20241210/SHA256SUMS. Lines as sha256sum writes
    /// them (HASH  FILE) or as BSD tags (SHA256 (FILE) = HASH); other lines are skipped.
    /// glint reads at most 1 MiB of it, from addresses the source policy allows.
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.startsWith('http://')")
        .message("source.hashFrom.url must be an http:// or https:// URL"))]
    #[schemars(length(max = 4096))]
    pub url: String,
    /// The name the source's file has in the checksums file (default: the last part of
    /// source.url's path, such as noble-server-cloudimg-amd64.img). Of several lines for it,
    /// the strongest algorithm's is taken. No line for it: reason HashNotPublished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub file: Option<String>,
    /// The checksums file's OpenPGP signature and the keys trusted to make it (a ConfigMap or
    /// Secret in this namespace), as an ImageSeries' spec.checksums.signature. Set, nothing
    /// is transferred until the signature checks out: a missing, bad, expired or unknown-key
    /// signature stops the transfer with its own reason (SignatureMissing, SignatureBad,
    /// SignatureKeyExpired, SignatureExpired, SignatureUnknownKey). Left out, the file is
    /// believed as served: prefer an https URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<super::ChecksumsSignature>,
}

spec_enum!(
    /// Hash algorithms glint can verify.
    HashAlgorithm { Md5 = "md5", Sha1 = "sha1", Sha256 = "sha256", Sha512 = "sha512" } default Sha256
);

spec_enum!(
    /// How to decompress the source.
    Decompression { Auto = "auto", None = "none", Gzip = "gzip", Xz = "xz", Bzip2 = "bzip2", Zstd = "zstd" } default Auto
);

spec_enum!(
    /// The disk format to convert a source to.
    ConvertTo { Raw = "raw", Qcow2 = "qcow2" } default Raw
);

impl ConvertTo {
    /// The same word as a Glance disk format.
    pub fn disk_format(self) -> crate::vocabulary::DiskFormat {
        crate::vocabulary::DiskFormat::from(self.as_str())
    }
}

spec_enum!(
    /// Who converts a source.
    ConversionBy { Auto = "auto", Glint = "glint", Glance = "glance" } default Auto
);

impl ConversionBy {
    /// auto is glint: Glance has no API that says which import plugins a cloud runs, and
    /// glint's own conversion works on every cloud.
    pub fn resolved(self) -> Self {
        match self {
            Self::Auto | Self::Glint => Self::Glint,
            Self::Glance => Self::Glance,
        }
    }
}

spec_enum!(
    /// How the data reaches Glance.
    TransferMethod { Auto = "auto", Upload = "upload", GlanceDirect = "glanceDirect", WebDownload = "webDownload" } default Auto
);
