//! Streaming transfers: file uploads and downloads that hash (md5) in the same pass, in
//! constant memory, with progress reporting.
//!
//! Upload data flow:
//!
//! ```text
//!  file ──read 1 MiB──▶ md5.update ──▶ bounded channel (4 chunks) ──▶ reqwest body ──▶ socket
//!        (blocking thread)                                        │
//!                                                                  └─▶ Progress::report
//! ```
//!
//! At most `CHUNK_SIZE * (CHANNEL_DEPTH + 2)` bytes are held in memory whatever the file size.
//! Every attempt of a retried upload re-opens the file and re-hashes it, so the md5 always
//! describes the bytes that were actually sent.
//!
//! Downloads mirror it: the async side batches the response body into chunks and a blocking
//! thread hashes, writes, `fsync`s and renames, so no tokio worker ever waits on the disk:
//!
//! ```text
//!  socket ──▶ batch to 1 MiB ──▶ bounded channel (4 chunks) ──▶ md5.update + write ──▶ temp file
//!             (async task)  └─▶ Progress::report               (blocking thread)  └─▶ fsync, rename
//! ```

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt as _;
use md5::{Digest as _, Md5};

/// Bytes read from disk per chunk.
pub const CHUNK_SIZE: usize = 1024 * 1024;
/// Chunks buffered between the reading thread and the socket.
const CHANNEL_DEPTH: usize = 4;

/// Receives transfer progress. Implemented for any `Fn(u64, u64) + Send + Sync`.
pub trait Progress: Send + Sync {
    /// `done` bytes of `total` have been handed to the network (upload) or received (download).
    /// A retried transfer starts again from 0.
    fn report(&self, done: u64, total: u64);
}

impl<F: Fn(u64, u64) + Send + Sync> Progress for F {
    fn report(&self, done: u64, total: u64) {
        self(done, total);
    }
}

/// A shared, optional progress reporter.
pub type ProgressRef = Option<Arc<dyn Progress>>;

/// Local failures of a transfer: the file could not be read or written, or changed under us.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("could not open `{}`", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` changed while it was being sent: {expected} bytes expected, {read} read", path.display())]
    Changed {
        path: PathBuf,
        expected: u64,
        read: u64,
    },
    /// The request body was dropped before its end (the server answered or the connection
    /// closed early): the file is fine, but it was not sent completely.
    #[error(
        "the upload of `{}` stopped after {sent} of {expected} bytes: the request body was \
         dropped before the end (the server answered early or the connection closed)",
        path.display()
    )]
    Abandoned {
        path: PathBuf,
        expected: u64,
        sent: u64,
    },
    /// The thread reading the file (upload) or writing it (download) died.
    #[error("the thread transferring `{}` failed", path.display())]
    Worker {
        path: PathBuf,
        #[source]
        source: tokio::task::JoinError,
    },
    #[error("could not write `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the download of `{}` was interrupted", path.display())]
    Interrupted {
        path: PathBuf,
        #[source]
        source: reqwest::Error,
    },
    #[error("`{}` downloaded with md5 {actual}, expected {expected}; nothing was kept", path.display())]
    DownloadChecksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
}

/// md5 (lower-case hex) and size of a file, read in one pass.
pub fn md5_file(path: &Path) -> Result<(String, u64), TransferError> {
    let mut file = std::fs::File::open(path).map_err(|source| TransferError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; CHUNK_SIZE];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|source| TransferError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((format!("{:x}", hasher.finalize()), total))
}

/// What one upload attempt sent: md5 and size of the bytes read from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub md5: String,
    pub bytes: u64,
}

/// The body stream of one upload attempt plus the handle that yields its md5 once sent.
pub struct FileUpload {
    pub stream: UploadStream,
    /// Size of the file when the attempt started (sent as `Content-Length`).
    pub len: u64,
    pub handle: UploadHandle,
}

/// The chunks of a file being uploaded.
pub type UploadStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

impl FileUpload {
    /// Splits into the request body and the handle.
    pub fn into_body(self) -> (reqwest::Body, u64, UploadHandle) {
        (
            reqwest::Body::wrap_stream(self.stream),
            self.len,
            self.handle,
        )
    }
}

/// Tracks one upload attempt's reading thread.
pub struct UploadHandle {
    path: PathBuf,
    len: u64,
    local_error: Arc<Mutex<Option<TransferError>>>,
    result: tokio::task::JoinHandle<ReadOutcome>,
}

/// How the reading thread of one upload attempt ended.
#[derive(Debug)]
enum ReadOutcome {
    /// The whole file up to its end was handed to the body.
    Complete(Sent),
    /// The body went away (the request was abandoned) after `sent` bytes had been handed over.
    Abandoned { sent: u64 },
    /// Reading failed (the error is in `local_error`).
    Failed,
}

impl UploadHandle {
    /// A local read failure that aborted the body, if any (then the transport error that
    /// reqwest reports is a consequence, not a network problem, and must not be retried).
    pub fn take_local_error(&self) -> Option<TransferError> {
        self.local_error.lock().ok().and_then(|mut e| e.take())
    }

    /// Waits for the reading thread and returns what was sent. Fails when the file could not
    /// be read completely, its size changed during the attempt, or the body was dropped
    /// before its end.
    pub async fn finish(self) -> Result<Sent, TransferError> {
        let joined = self.result.await;
        if let Some(err) = self.local_error.lock().ok().and_then(|mut e| e.take()) {
            return Err(err);
        }
        match joined {
            Ok(ReadOutcome::Complete(sent)) if sent.bytes == self.len => Ok(sent),
            Ok(ReadOutcome::Complete(sent)) => Err(TransferError::Changed {
                path: self.path,
                expected: self.len,
                read: sent.bytes,
            }),
            Ok(ReadOutcome::Abandoned { sent }) => Err(TransferError::Abandoned {
                path: self.path,
                expected: self.len,
                sent,
            }),
            // A read error is always recorded in `local_error` before `Failed` is returned;
            // reaching here means it was already taken by `take_local_error`.
            Ok(ReadOutcome::Failed) => Err(TransferError::Read {
                path: self.path,
                source: std::io::Error::other("the file could not be read (reported earlier)"),
            }),
            Err(source) => Err(TransferError::Worker {
                path: self.path,
                source,
            }),
        }
    }
}

/// Opens `path` and prepares a streaming body that hashes while it is sent.
///
/// Must be called inside a tokio runtime (it starts a blocking reader task).
pub fn file_upload(path: &Path, progress: ProgressRef) -> Result<FileUpload, TransferError> {
    let file = std::fs::File::open(path).map_err(|source| TransferError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let len = file
        .metadata()
        .map_err(|source| TransferError::Read {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(CHANNEL_DEPTH);
    let local_error = Arc::new(Mutex::new(None));
    let reader_error = Arc::clone(&local_error);
    let reader_path = path.to_path_buf();
    let result = tokio::task::spawn_blocking(move || {
        read_into_channel(file, &reader_path, &tx, &reader_error)
    });
    let mut done = 0u64;
    let body_stream = tokio_stream_from(rx).map(move |chunk| {
        if let Ok(bytes) = &chunk {
            done += bytes.len() as u64;
            if let Some(p) = &progress {
                p.report(done, len);
            }
        }
        chunk
    });
    Ok(FileUpload {
        stream: Box::pin(body_stream),
        len,
        handle: UploadHandle {
            path: path.to_path_buf(),
            len,
            local_error,
            result,
        },
    })
}

/// Reads `file` chunk by chunk, hashing and forwarding each, until the end of the file, a
/// read error, or the receiver going away (the request was abandoned).
fn read_into_channel(
    mut file: std::fs::File,
    path: &Path,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    local_error: &Mutex<Option<TransferError>>,
) -> ReadOutcome {
    let mut hasher = Md5::new();
    let mut total = 0u64;
    loop {
        let mut buf = vec![0u8; CHUNK_SIZE];
        let n = match read_full(&mut file, &mut buf) {
            Ok(n) => n,
            Err(source) => {
                let kind = source.kind();
                if let Ok(mut slot) = local_error.lock() {
                    *slot = Some(TransferError::Read {
                        path: path.to_path_buf(),
                        source,
                    });
                }
                let _ = tx.blocking_send(Err(std::io::Error::new(kind, "local read failed")));
                return ReadOutcome::Failed;
            }
        };
        if n == 0 {
            return ReadOutcome::Complete(Sent {
                md5: format!("{:x}", hasher.finalize()),
                bytes: total,
            });
        }
        buf.truncate(n);
        hasher.update(&buf);
        if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
            return ReadOutcome::Abandoned { sent: total };
        }
        total += n as u64;
    }
}

/// Fills `buf` as far as the file allows (short reads only at end of file).
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A `Stream` over a tokio mpsc receiver (tokio-stream is not a dependency).
fn tokio_stream_from<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// Why writing a stream to a file failed: the stream broke, or the local file.
#[derive(Debug)]
pub enum StreamError<E> {
    /// The stream yielded an error (the source of the bytes failed).
    Source(E),
    Local(TransferError),
}

/// Streams `response`'s body into `dest`, hashing in the same pass (see [`write_stream`]).
pub async fn download_to(
    response: reqwest::Response,
    dest: &Path,
    expected_md5: Option<&str>,
    progress: ProgressRef,
) -> Result<Sent, TransferError> {
    let total = response.content_length().unwrap_or(0);
    match write_stream(response.bytes_stream(), dest, expected_md5, total, progress).await {
        Ok(sent) => Ok(sent),
        Err(StreamError::Source(source)) => Err(TransferError::Interrupted {
            path: dest.to_path_buf(),
            source: source.without_url(),
        }),
        Err(StreamError::Local(e)) => Err(e),
    }
}

/// Streams `stream` into `dest` through an [`AtomicFile`](crate::fsutil::AtomicFile),
/// hashing in the same pass. When `expected_md5` is given and differs, nothing is kept.
/// On success the file is flushed and renamed over `dest`; on any failure (or when the
/// future is dropped) `dest` is untouched and no temporary file stays.
///
/// The disk work (writes, md5, `fsync`, rename) runs on a blocking thread fed through a
/// bounded channel, so the tokio workers never wait on the disk.
pub async fn write_stream<S, E>(
    stream: S,
    dest: &Path,
    expected_md5: Option<&str>,
    total: u64,
    progress: ProgressRef,
) -> Result<Sent, StreamError<E>>
where
    S: futures_util::Stream<Item = Result<Bytes, E>>,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let writer_dest = dest.to_path_buf();
    let writer_md5 = expected_md5.map(str::to_owned);
    let writer = tokio::task::spawn_blocking(move || {
        write_from_channel(rx, &writer_dest, writer_md5.as_deref())
    });
    let mut done = 0u64;
    let mut pending = bytes::BytesMut::new();
    let mut stream = std::pin::pin!(stream);
    let mut interrupted = None;
    let mut writer_gone = false;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(source) => {
                interrupted = Some(source);
                break;
            }
        };
        done += chunk.len() as u64;
        if let Some(p) = &progress {
            p.report(done, total.max(done));
        }
        pending.extend_from_slice(&chunk);
        if pending.len() >= CHUNK_SIZE && tx.send(pending.split().freeze()).await.is_err() {
            writer_gone = true; // it failed; its error is reported below
            break;
        }
    }
    if interrupted.is_none() && !writer_gone && !pending.is_empty() {
        let _ = tx.send(pending.split().freeze()).await;
    }
    if interrupted.is_none() && !writer_gone {
        // The end marker: an empty chunk. Without it (the sender dropped), the writer aborts.
        let _ = tx.send(Bytes::new()).await;
    }
    drop(tx);
    let written = writer.await.map_err(|source| {
        StreamError::Local(TransferError::Worker {
            path: dest.to_path_buf(),
            source,
        })
    })?;
    if let Some(source) = interrupted {
        return Err(StreamError::Source(source));
    }
    written.map_err(StreamError::Local)
}

/// The blocking half of [`write_stream`]: writes and hashes what arrives until the empty end
/// marker, then checks the md5, `fsync`s and renames. Without the marker (the download was
/// interrupted) or on any failure, the temporary file is removed and `dest` is untouched.
fn write_from_channel(
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
    dest: &Path,
    expected_md5: Option<&str>,
) -> Result<Sent, TransferError> {
    let write_err = |e: crate::fsutil::AtomicWriteError| TransferError::Write {
        path: dest.to_path_buf(),
        source: e.source,
    };
    let mut tmp = crate::fsutil::AtomicFile::create(dest, 0o644).map_err(write_err)?;
    let mut hasher = Md5::new();
    let mut bytes = 0u64;
    let mut finished = false;
    while let Some(chunk) = rx.blocking_recv() {
        if chunk.is_empty() {
            finished = true;
            break;
        }
        hasher.update(&chunk);
        tmp.write_all(&chunk).map_err(write_err)?;
        bytes += chunk.len() as u64;
    }
    if !finished {
        // Interrupted: the caller reports why; the temporary file goes with `tmp`.
        return Ok(Sent {
            md5: String::new(),
            bytes,
        });
    }
    let md5 = format!("{:x}", hasher.finalize());
    if let Some(expected) = expected_md5 {
        if !expected.eq_ignore_ascii_case(&md5) {
            return Err(TransferError::DownloadChecksum {
                path: dest.to_path_buf(),
                expected: expected.to_owned(),
                actual: md5,
            });
        }
    }
    tmp.commit().map_err(write_err)?;
    Ok(Sent { md5, bytes })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn md5_of_a_file_matches_known_digest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"hello world").unwrap();
        let (md5, n) = md5_file(&p).unwrap();
        assert_eq!(md5, "5eb63bbbe01eeed093cb22bb8f5acdc3");
        assert_eq!(n, 11);
    }

    #[test]
    fn md5_of_missing_file_names_it() {
        let e = md5_file(Path::new("/nonexistent-kc/file.sif")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent-kc/file.sif"), "{e}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn upload_body_streams_whole_file_and_hashes_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.bin");
        let data: Vec<u8> = (0..(CHUNK_SIZE * 3 + 17))
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&p, &data).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = Arc::clone(&seen);
        let progress: ProgressRef = Some(Arc::new(move |done: u64, total: u64| {
            seen2.lock().unwrap().push((done, total));
        }));
        let up = file_upload(&p, progress).unwrap();
        assert_eq!(up.len, data.len() as u64);
        // Drain the body as reqwest would.
        let mut stream = up.stream;
        let mut got = Vec::new();
        while let Some(chunk) = stream.next().await {
            got.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(got, data);
        let sent = up.handle.finish().await.unwrap();
        assert_eq!(sent.bytes, data.len() as u64);
        assert_eq!(sent.md5, format!("{:x}", Md5::digest(&data)));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.last(), Some(&(data.len() as u64, data.len() as u64)));
        assert_eq!(seen.len(), 4);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropped_body_is_reported_as_abandoned_not_as_a_changed_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.bin");
        // More chunks than the channel and the reader can hold, so it never reaches the end.
        std::fs::write(&p, vec![7u8; CHUNK_SIZE * (CHANNEL_DEPTH + 6)]).unwrap();
        let up = file_upload(&p, None).unwrap();
        let mut stream = up.stream;
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(first.len(), CHUNK_SIZE);
        drop(stream); // what reqwest does when the request ends early
        let err = up.handle.finish().await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, TransferError::Abandoned { .. }), "{err:?}");
        assert!(
            text.contains("request body was dropped before the end"),
            "{text}"
        );
        assert!(!text.contains("changed"), "{text}");
        let TransferError::Abandoned { expected, sent, .. } = err else {
            unreachable!()
        };
        assert_eq!(expected, (CHUNK_SIZE * (CHANNEL_DEPTH + 6)) as u64);
        assert!(sent >= CHUNK_SIZE as u64 && sent < expected, "{sent}");
    }

    fn response_of(chunks: Vec<Result<Vec<u8>, std::io::Error>>) -> reqwest::Response {
        let stream = futures_util::stream::iter(chunks.into_iter().map(|c| c.map(Bytes::from)));
        let body = reqwest::Body::wrap_stream(stream);
        reqwest::Response::from(http::Response::new(body))
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[tokio::test(flavor = "current_thread")]
    async fn download_writes_hashes_and_renames_off_the_runtime_thread() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.sif");
        let data: Vec<u8> = (0..(CHUNK_SIZE * 2 + 5)).map(|i| (i % 241) as u8).collect();
        let chunks = data.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
        let expected = format!("{:x}", Md5::digest(&data));
        let sent = download_to(response_of(chunks), &dest, Some(&expected), None)
            .await
            .unwrap();
        assert_eq!(sent.md5, expected);
        assert_eq!(sent.bytes, data.len() as u64);
        assert_eq!(std::fs::read(&dest).unwrap(), data);
        assert_eq!(leftovers(dir.path()), vec!["out.sif".to_owned()]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn download_checksum_mismatch_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.sif");
        let err = download_to(
            response_of(vec![Ok(b"abc".to_vec())]),
            &dest,
            Some(&"0".repeat(32)),
            None,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, TransferError::DownloadChecksum { .. }),
            "{err:?}"
        );
        assert!(leftovers(dir.path()).is_empty());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn interrupted_download_is_reported_and_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.sif");
        let chunks = vec![
            Ok(vec![1u8; CHUNK_SIZE + 10]),
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "reset",
            )),
        ];
        let err = download_to(response_of(chunks), &dest, None, None)
            .await
            .unwrap_err();
        assert!(matches!(err, TransferError::Interrupted { .. }), "{err:?}");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn download_into_a_missing_directory_is_a_write_error() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("no/such/dir/out.sif");
        let chunks = (0..8).map(|_| Ok(vec![0u8; CHUNK_SIZE])).collect();
        let err = download_to(response_of(chunks), &dest, None, None)
            .await
            .unwrap_err();
        assert!(matches!(err, TransferError::Write { .. }), "{err:?}");
    }
}
