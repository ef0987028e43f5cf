//! The pipeline against in-memory downloads: chunking, digests, checks, gathering.

use super::super::hash::Digest;
use super::*;
use std::io::Write;

fn chunks(data: &[u8], size: usize) -> impl Stream<Item = Result<Bytes, String>> + Send + 'static {
    let parts: Vec<Result<Bytes, String>> = data
        .chunks(size)
        .map(|part| Ok(Bytes::copy_from_slice(part)))
        .collect();
    futures::stream::iter(parts)
}

fn pseudo_random(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn hex_of(algorithm: HashAlgorithm, data: &[u8]) -> String {
    let mut digest = Digest::new(algorithm);
    digest.update(data);
    digest.hex().unwrap()
}

async fn run(
    download: impl Stream<Item = Result<Bytes, String>> + Send + 'static,
    options: PipelineOptions,
) -> (Vec<Bytes>, Option<String>, Result<Sent, PipelineError>) {
    let pipeline = start(download, options, Arc::new(|_| {}));
    let mut data = pipeline.data;
    let mut passed = Vec::new();
    let mut failed = None;
    while let Some(item) = data.next().await {
        match item {
            Ok(chunk) => passed.push(chunk),
            Err(err) => failed = Some(err.to_string()),
        }
    }
    (passed, failed, pipeline.done.await.expect("a verdict"))
}

#[tokio::test]
async fn chunks_too_large_to_join_pass_on_without_a_copy() {
    let data = pseudo_random(5 * 400 * 1024);
    let source: Vec<Bytes> = data
        .chunks(400 * 1024)
        .map(Bytes::copy_from_slice)
        .collect();
    let addresses: Vec<usize> = source.iter().map(|chunk| chunk.as_ptr() as usize).collect();
    // A stream that is always ready keeps the queue full: a join is possible at every chunk.
    let (passed, failed, verdict) = run(
        futures::stream::iter(source.into_iter().map(Ok)),
        PipelineOptions::default(),
    )
    .await;
    assert_eq!(failed, None);
    assert!(verdict.is_ok());
    assert_eq!(passed.concat(), data);
    let passed_addresses: Vec<usize> = passed.iter().map(|chunk| chunk.as_ptr() as usize).collect();
    assert_eq!(
        passed_addresses, addresses,
        "each 400 KiB chunk is the downloaded buffer itself"
    );
}

#[test]
fn small_chunks_already_downloaded_are_gathered_up_to_a_chunk_and_nothing_is_lost() {
    let data = pseudo_random(CHUNK + 3 * 4096);
    let pieces = |data: &[u8]| -> Vec<Result<Bytes, String>> {
        data.chunks(4096)
            .map(|part| Ok(Bytes::copy_from_slice(part)))
            .collect()
    };
    // Written 4 KiB at a time: one chunk of CHUNK, then the rest, then the end.
    let mut download = std::pin::pin!(futures::stream::iter(pieces(&data)));
    let first = download.as_mut().now_or_never_next().unwrap();
    let (joined, past) = gather(first, download.as_mut());
    assert_eq!(
        (joined.len(), past.is_none()),
        (CHUNK, true),
        "full: no more is read"
    );
    let next = download.as_mut().now_or_never_next().unwrap();
    let (rest, past) = gather(next, download.as_mut());
    assert_eq!([joined, rest].concat(), data);
    assert!(matches!(past, Some(None)), "the end is kept");

    // An error right behind small chunks is kept for the pipeline, not swallowed.
    let mut failing = pieces(&data[..8192]);
    failing.push(Err("connection reset".to_string()));
    let mut download = std::pin::pin!(futures::stream::iter(failing));
    let first = download.as_mut().now_or_never_next().unwrap();
    let (joined, past) = gather(first, download.as_mut());
    assert_eq!(joined.len(), 8192);
    assert!(matches!(past, Some(Some(Err(error))) if error == "connection reset"));

    // A source that has nothing more yet: what is there goes at once.
    let mut waiting = std::pin::pin!(
        futures::stream::iter(pieces(&data[..4096])).chain(futures::stream::pending())
    );
    let first = waiting.as_mut().now_or_never_next().unwrap();
    let (joined, past) = gather(first, waiting.as_mut());
    assert_eq!((joined.len(), past.is_none()), (4096, true));
}

trait NextNow {
    fn now_or_never_next(self) -> Option<Bytes>;
}

impl<S: Stream<Item = Result<Bytes, String>>> NextNow for std::pin::Pin<&mut S> {
    fn now_or_never_next(mut self) -> Option<Bytes> {
        use futures::FutureExt;
        self.next().now_or_never()??.ok()
    }
}

#[tokio::test]
async fn plain_data_passes_in_large_chunks_with_glances_digests() {
    let data = pseudo_random(3 * CHUNK + 12345);
    let (passed, failed, verdict) = run(
        chunks(&data, 16 * 1024),
        PipelineOptions {
            hash: Some(SourceHash {
                algorithm: HashAlgorithm::Sha256,
                value: hex_of(HashAlgorithm::Sha256, &data),
            }),
            announced_len: Some(data.len() as u64),
            ..PipelineOptions::default()
        },
    )
    .await;
    assert_eq!(failed, None);
    // Small chunks are joined only while more wait in the queue, so how many go out
    // depends on scheduling (4 when the download stays ahead); never the source's 97.
    let source_chunks = data.len().div_ceil(16 * 1024);
    assert!(
        passed.len() <= source_chunks / 4,
        "large chunks, not the source's 16 KiB: {} of them",
        passed.len()
    );
    assert!(passed.iter().all(|chunk| chunk.len() <= CHUNK));
    assert_eq!(passed.concat(), data);
    let sent = verdict.expect("sent");
    assert_eq!(sent.sha512, hex_of(HashAlgorithm::Sha512, &data));
    assert_eq!(
        (sent.bytes_in, sent.bytes_out),
        (data.len() as u64, data.len() as u64)
    );
    assert_eq!(sent.format, Format::Plain);
}

#[tokio::test]
async fn a_gzip_source_is_hashed_as_downloaded_and_sent_unpacked() {
    let data = pseudo_random(2 * CHUNK);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&data).unwrap();
    let packed = encoder.finish().unwrap();
    let (passed, failed, verdict) = run(
        chunks(&packed, 7000),
        PipelineOptions {
            hash: Some(SourceHash {
                algorithm: HashAlgorithm::Sha512,
                value: hex_of(HashAlgorithm::Sha512, &packed),
            }),
            ..PipelineOptions::default()
        },
    )
    .await;
    assert_eq!(failed, None);
    assert_eq!(passed.concat(), data);
    let sent = verdict.expect("sent");
    assert_eq!(sent.format, Format::Gzip);
    assert_eq!(sent.bytes_in, packed.len() as u64);
    assert_eq!(
        sent.sha512,
        hex_of(HashAlgorithm::Sha512, &data),
        "of what was sent"
    );
}

#[tokio::test]
async fn the_upload_learns_from_the_first_bytes_whether_they_go_out_as_they_came() {
    let raw = pseudo_random(64 * 1024);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&raw).unwrap();
    let gzipped = encoder.finish().unwrap();
    let cases = [
        (
            "raw bytes, decompress auto",
            &raw,
            Decompression::Auto,
            true,
        ),
        (
            "raw bytes, decompress none",
            &raw,
            Decompression::None,
            true,
        ),
        (
            "gzip, decompress auto",
            &gzipped,
            Decompression::Auto,
            false,
        ),
        (
            "gzip, decompress gzip",
            &gzipped,
            Decompression::Gzip,
            false,
        ),
        // Kept as it is, so its length is the source's.
        ("gzip, decompress none", &gzipped, Decompression::None, true),
    ];
    for (case, data, decompression, expected) in cases {
        let pipeline = start(
            chunks(data, 16 * 1024),
            PipelineOptions {
                decompression,
                ..PipelineOptions::default()
            },
            Arc::new(|_| {}),
        );
        let told = pipeline.passes_through.await;
        assert_eq!(told, Ok(expected), "{case}");
        let passed: Vec<Bytes> = pipeline.data.map(|item| item.unwrap()).collect().await;
        assert!(!passed.is_empty(), "{case}: the data still flows");
    }
}

#[tokio::test]
async fn a_failed_check_withholds_the_last_chunk_and_fails_the_upload() {
    let data = pseudo_random(2 * CHUNK + 10);
    let mut truncated_gzip = {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&data).unwrap();
        encoder.finish().unwrap()
    };
    truncated_gzip.truncate(truncated_gzip.len() - 100);
    let broken_download: Vec<Result<Bytes, String>> = vec![
        Ok(Bytes::from(data[..CHUNK].to_vec())),
        Err("connection reset by peer".to_string()),
    ];
    type Download = Vec<Result<Bytes, String>>;
    let cases: Vec<(&str, Download, PipelineOptions, &str)> = vec![
        (
            "wrong hash",
            chunks(&data, 65536).collect::<Vec<_>>().await,
            PipelineOptions {
                hash: Some(SourceHash {
                    algorithm: HashAlgorithm::Md5,
                    value: "0".repeat(32),
                }),
                ..PipelineOptions::default()
            },
            "md5 is",
        ),
        (
            "short download",
            chunks(&data, 65536).collect::<Vec<_>>().await,
            PipelineOptions {
                announced_len: Some(data.len() as u64 + 1),
                ..PipelineOptions::default()
            },
            "announced",
        ),
        (
            "truncated archive",
            chunks(&truncated_gzip, 65536).collect::<Vec<_>>().await,
            PipelineOptions::default(),
            "gzip archive is corrupt or truncated",
        ),
        (
            "broken download",
            broken_download,
            PipelineOptions::default(),
            "connection reset",
        ),
    ];
    for (what, download, options, words) in cases {
        let (passed, failed, verdict) = run(futures::stream::iter(download), options).await;
        let error = verdict.expect_err(what);
        assert!(error.to_string().contains(words), "{what}: {error}");
        assert!(failed.is_some(), "{what}: the upload must end in an error");
        let sent: usize = passed.iter().map(Bytes::len).sum();
        assert!(sent < data.len(), "{what}: the last chunk never left");
    }
}
