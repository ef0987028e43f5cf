//! Unpacking a source on the way into Glance: gzip, xz, bzip2 and zstd, chosen by the spec or
//! by the file's first bytes. Every decoder is a streaming `Read`, so memory stays bounded by
//! the decoders' own windows whatever the image's size.

use std::io::{BufReader, Read};

use crate::crd::Decompression;

/// The formats glint unpacks, and `Plain` for data passed on as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Plain,
    Gzip,
    Xz,
    Bzip2,
    Zstd,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "uncompressed",
            Self::Gzip => "gzip",
            Self::Xz => "xz",
            Self::Bzip2 => "bzip2",
            Self::Zstd => "zstd",
        }
    }

    /// The format a file starting with `head` is in; `Plain` when no magic number matches.
    pub fn sniff(head: &[u8]) -> Self {
        const MAGIC: &[(&[u8], Format)] = &[
            (&[0x1f, 0x8b], Format::Gzip),
            (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], Format::Xz),
            (b"BZh", Format::Bzip2),
            (&[0x28, 0xb5, 0x2f, 0xfd], Format::Zstd),
        ];
        MAGIC
            .iter()
            .find(|(magic, _)| head.starts_with(magic))
            .map_or(Self::Plain, |(_, format)| *format)
    }

    /// The format the spec asks for; `None` for auto, which sniffs.
    pub fn chosen(decompression: Decompression) -> Option<Self> {
        match decompression {
            Decompression::Auto => None,
            Decompression::None => Some(Self::Plain),
            Decompression::Gzip => Some(Self::Gzip),
            Decompression::Xz => Some(Self::Xz),
            Decompression::Bzip2 => Some(Self::Bzip2),
            Decompression::Zstd => Some(Self::Zstd),
        }
    }
}

/// How many bytes [`Format::sniff`] needs at most.
pub const SNIFF_LEN: usize = 6;

/// A decoder over `input` for `decompression`, and the format it decodes. Auto reads the
/// first bytes to choose, then hands them to the decoder in front of the rest.
pub fn decoder<R: Read + Send + 'static>(
    mut input: R,
    decompression: Decompression,
) -> std::io::Result<(Box<dyn Read + Send>, Format)> {
    let mut head = [0u8; SNIFF_LEN];
    let got = read_up_to(&mut input, &mut head)?;
    let head = head[..got].to_vec();
    let format = Format::chosen(decompression).unwrap_or_else(|| Format::sniff(&head));
    let input = BufReader::with_capacity(256 * 1024, std::io::Cursor::new(head).chain(input));
    let reader: Box<dyn Read + Send> = match format {
        Format::Plain => Box::new(input),
        // Multi-member readers: files made by pigz/pbzip2 are concatenated streams.
        Format::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Format::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(input)),
        Format::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(input)),
        // libzstd goes on to the next frame by itself (pzstd output, concatenated files), and
        // keeps its default window limit (128 MiB), so a hostile header cannot ask for more.
        Format::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
    };
    Ok((reader, format))
}

/// Reads until `buf` is full or the input ends.
fn read_up_to<R: Read>(input: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const TEXT: &[u8] = b"glint unpacks images on the way into Glance. ";

    fn data() -> Vec<u8> {
        TEXT.repeat(5000)
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn xz(data: &[u8]) -> Vec<u8> {
        let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 1);
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn bzip2(data: &[u8]) -> Vec<u8> {
        let mut encoder = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn zstd(data: &[u8]) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
    }

    /// A reader that hands out one byte at a time: sources arrive in any chunking.
    struct Trickle(std::io::Cursor<Vec<u8>>);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let len = buf.len().min(1);
            self.0.read(&mut buf[..len])
        }
    }

    fn unpack(packed: Vec<u8>, how: Decompression) -> std::io::Result<(Vec<u8>, Format)> {
        let (mut reader, format) = decoder(Trickle(std::io::Cursor::new(packed)), how)?;
        let mut out = Vec::new();
        reader.read_to_end(&mut out)?;
        Ok((out, format))
    }

    #[test]
    fn each_format_is_unpacked_when_named_and_when_sniffed() {
        type Pack = fn(&[u8]) -> Vec<u8>;
        let rows: [(Pack, Decompression, Format); 5] = [
            (gzip, Decompression::Gzip, Format::Gzip),
            (xz, Decompression::Xz, Format::Xz),
            (bzip2, Decompression::Bzip2, Format::Bzip2),
            (zstd, Decompression::Zstd, Format::Zstd),
            (<[u8]>::to_vec, Decompression::None, Format::Plain),
        ];
        for (pack, named, format) in rows {
            for how in [named, Decompression::Auto] {
                let (out, found) = unpack(pack(&data()), how).expect("unpacks");
                assert_eq!(found, format, "{how:?}");
                assert!(out == data(), "{format:?} via {how:?}: {} bytes", out.len());
            }
        }
    }

    #[test]
    fn concatenated_members_and_frames_are_all_unpacked() {
        for pack in [gzip as fn(&[u8]) -> Vec<u8>, xz, bzip2, zstd] {
            let mut twice = pack(TEXT);
            twice.extend(pack(TEXT));
            let (out, format) = unpack(twice, Decompression::Auto).expect("unpacks");
            assert_eq!(out, TEXT.repeat(2), "{format:?}");
        }
    }

    #[test]
    fn corrupt_or_truncated_archives_fail_instead_of_ending_early() {
        for pack in [gzip as fn(&[u8]) -> Vec<u8>, xz, bzip2, zstd] {
            let whole = pack(&data());
            let truncated = whole[..whole.len() * 2 / 3].to_vec();
            let mut corrupt = whole.clone();
            let middle = corrupt.len() / 2;
            for byte in &mut corrupt[middle..middle + 16] {
                *byte ^= 0x5a;
            }
            for (what, bad) in [("truncated", truncated), ("corrupt", corrupt)] {
                let outcome = unpack(bad, Decompression::Auto);
                assert!(
                    outcome.is_err(),
                    "{what} {:?} must fail",
                    Format::sniff(&whole)
                );
            }
        }
    }

    #[test]
    fn plain_data_is_sniffed_as_plain_even_when_shorter_than_a_magic_number() {
        for short in [&b""[..], b"\x1f", b"BZ", b"raw bytes"] {
            let (out, format) = unpack(short.to_vec(), Decompression::Auto).expect("passes");
            assert_eq!((out.as_slice(), format), (short, Format::Plain));
        }
    }
}
