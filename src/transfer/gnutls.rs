//! The four calls glint makes into GnuTLS, the system's TLS library, for digests: the whole
//! unsafe surface of [`super::hash`]. Built with the default `gnutls` feature.
//!
//! Why GnuTLS: qemu-img links it, so the container image carries it anyway, and its SHA-2
//! code is the same CRYPTOGAMS assembly as OpenSSL's. Measured on this project's 2-core
//! machine over 256 MiB: sha512 545-722 MB/s (OpenSSL 549-705, ring 408-477, the sha2 crate
//! 426-478), md5 567-592 MB/s. The API is a handle and three functions, so no bindings
//! generator and no headers are needed, and the soname is named exactly (`libgnutls.so.30`,
//! the ABI since GnuTLS 3.4) so that building needs only the runtime package, which apt itself
//! depends on.

use std::ffi::{CStr, c_char, c_int, c_void};

/// `gnutls_digest_algorithm_t` values, from gnutls/gnutls.h (fixed by the ABI).
#[derive(Debug, Clone, Copy)]
#[repr(i32)]
pub enum Algorithm {
    Md5 = 2,
    Sha1 = 3,
    Sha256 = 6,
    Sha512 = 8,
}

impl Algorithm {
    /// Bytes of the digest: the buffer `gnutls_hash_deinit` writes into must hold them.
    const fn output_len(self) -> usize {
        match self {
            Self::Md5 => 16,
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }
}

#[allow(unsafe_code)]
#[link(name = "libgnutls.so.30", kind = "dylib", modifiers = "+verbatim")]
unsafe extern "C" {
    fn gnutls_hash_init(handle: *mut *mut c_void, algorithm: c_int) -> c_int;
    fn gnutls_hash(handle: *mut c_void, data: *const c_void, len: usize) -> c_int;
    fn gnutls_hash_deinit(handle: *mut c_void, digest: *mut c_void);
    fn gnutls_strerror(code: c_int) -> *const c_char;
}

/// An incremental digest, owning its GnuTLS handle.
pub struct Hash {
    handle: *mut c_void,
    algorithm: Algorithm,
}

// SAFETY: a GnuTLS hash handle is plain state with no tie to the thread that made it; it is
// only ever used through `&mut self`, one thread at a time, so it may move between threads
// (a transfer's task does). It is not Sync.
#[allow(unsafe_code)]
unsafe impl Send for Hash {}

#[allow(unsafe_code)]
impl Hash {
    pub fn new(algorithm: Algorithm) -> Result<Self, String> {
        let mut handle = std::ptr::null_mut();
        // SAFETY: `handle` is a valid place for the out-pointer; the algorithm is one of the
        // ABI's values.
        let code = unsafe { gnutls_hash_init(&mut handle, algorithm as c_int) };
        if code < 0 || handle.is_null() {
            return Err(describe(code));
        }
        Ok(Self { handle, algorithm })
    }

    pub fn update(&mut self, data: &[u8]) -> Result<(), String> {
        if data.is_empty() {
            return Ok(());
        }
        // SAFETY: the handle is live (freed only by `finish` or `drop`, which consume it), and
        // GnuTLS reads exactly `len` bytes from `data`.
        let code = unsafe { gnutls_hash(self.handle, data.as_ptr().cast(), data.len()) };
        if code < 0 {
            return Err(describe(code));
        }
        Ok(())
    }

    /// The digest's bytes; frees the handle.
    pub fn finish(self) -> Vec<u8> {
        let mut digest = vec![0_u8; self.algorithm.output_len()];
        let handle = self.handle;
        std::mem::forget(self);
        // SAFETY: the handle is live and freed here exactly once (`forget` skips `drop`); the
        // buffer holds the algorithm's whole output.
        unsafe { gnutls_hash_deinit(handle, digest.as_mut_ptr().cast()) };
        digest
    }
}

#[allow(unsafe_code)]
impl Drop for Hash {
    fn drop(&mut self) {
        // SAFETY: the handle is live; a null digest tells GnuTLS to discard the output.
        unsafe { gnutls_hash_deinit(self.handle, std::ptr::null_mut()) };
    }
}

#[allow(unsafe_code)]
fn describe(code: c_int) -> String {
    // SAFETY: gnutls_strerror returns a static NUL-terminated string for any code (or null,
    // handled below); it is never freed.
    let text = unsafe { gnutls_strerror(code) };
    if text.is_null() {
        return format!("GnuTLS error {code}");
    }
    // SAFETY: non-null, NUL-terminated and static, as above.
    let text = unsafe { CStr::from_ptr(text) };
    format!("{} (GnuTLS error {code})", text.to_string_lossy())
}
