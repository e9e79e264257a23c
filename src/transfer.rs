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
use std::time::Duration;

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
    md5_read(&mut file).map_err(|source| TransferError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// md5 (lower-case hex) and length of everything `reader` gives until its end: the one
/// hashing loop for files read whole (a SIF just written, a file to check).
pub fn md5_read(reader: &mut impl std::io::Read) -> std::io::Result<(String, u64)> {
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; CHUNK_SIZE];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
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

// ------------------------------------------------------------------------------------------
// Resumable downloads
//
//  socket ──▶ batch to 1 MiB ──▶ bounded channel ──▶ md5.update + append ──▶ `<dest>.part`
//                                                    (blocking thread)        │ complete, md5 ok
//                                                                             ▼
//                                                                 fsync, rename over `<dest>`
//
// The bytes received so far live in `<dest>.part` (locked with `flock` while a download
// writes it). A dropped connection is retried with `Range: bytes=<len>-` (and `If-Range`, so
// a changed file restarts instead of being spliced); a later call resumes a `.part` an
// earlier one left, hashing the bytes already there once. A server that ignores `Range`
// (answers 200) restarts the file cleanly. The md5 is computed while writing; a mismatch
// removes the `.part` and keeps nothing.

/// Why a resumable download failed.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("`{url}` is not a valid download URL")]
    BadUrl { url: String },
    #[error("could not set up the HTTP client to download `{url}`")]
    Setup {
        url: String,
        #[source]
        source: crate::http::HttpSetupError,
    },
    /// The server answered with an error status (the message has its own words).
    #[error("downloading `{url}` failed: the server answered {status}{detail}")]
    Status {
        url: String,
        status: u16,
        /// ` <reason>: <the server's message>; <why it was not retried>`.
        detail: String,
        /// The body of the last answer.
        body: String,
        attempts: u32,
        /// Why the status was not retried (a `Retry-After` over the cap, ...).
        not_retried: Option<String>,
    },
    /// The connection failed (or kept failing); what arrived is kept for the next call.
    #[error(
        "downloading `{url}` failed after {attempts} attempt(s); the {kept} bytes received are \
         kept in `{}` and the next download resumes from there",
        part.display()
    )]
    Transport {
        url: String,
        attempts: u32,
        kept: u64,
        part: PathBuf,
        #[source]
        source: reqwest::Error,
    },
    #[error(transparent)]
    Local(#[from] TransferError),
}

/// What a resumable download did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// md5 of the file (lower-case hex).
    pub md5: String,
    pub bytes: u64,
    /// Bytes already in the `.part` file (an earlier interrupted download) at the start.
    pub resumed_from: u64,
    /// Requests sent with a `Range` header.
    pub range_requests: u32,
    /// `dest` was there already (or appeared while this call waited for another download
    /// of it): it is kept as it is, nothing was downloaded.
    pub already_present: bool,
}

/// The partial file a download of `dest` writes: `<dest>.part`, beside it.
#[must_use]
pub fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest
        .file_name()
        .map_or_else(|| "download".into(), std::ffi::OsStr::to_os_string);
    name.push(".part");
    dest.with_file_name(name)
}

/// The `.part` file being written: locked, its length and the md5 of its bytes so far.
struct Partial {
    file: std::fs::File,
    path: PathBuf,
    len: u64,
    hasher: Md5,
}

enum Opened {
    Partial(Partial),
    /// `dest` is there (another process may have completed it while we waited for its
    /// lock) and, when an md5 is expected, has it.
    Present {
        md5: String,
        bytes: u64,
    },
}

/// Opens (or creates) and locks `<dest>.part`, then hashes what it holds. A `dest` already
/// there is kept when it has `expected` md5 (or none is expected); one with other bytes (an
/// older version under the same name) is replaced by the download. Blocking.
fn open_partial(dest: &Path, expected: Option<&str>) -> Result<Opened, TransferError> {
    use std::io::Seek as _;
    use std::os::unix::fs::MetadataExt as _;
    let path = partial_path(dest);
    let write_err = |source| TransferError::Write {
        path: path.clone(),
        source,
    };
    loop {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(write_err)?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| write_err(e.into()))?;
        if dest.exists() {
            let (md5, bytes) = md5_file(dest)?;
            if expected.is_none_or(|e| e == md5) {
                // Nothing to resume in an empty `.part` (made just now by this call).
                let ours = file
                    .metadata()
                    .ok()
                    .filter(|m| m.len() == 0)
                    .map(|m| m.ino());
                if ours.is_some() && ours == std::fs::metadata(&path).ok().map(|m| m.ino()) {
                    let _ = std::fs::remove_file(&path);
                }
                return Ok(Opened::Present { md5, bytes });
            }
            log::info!(
                "`{}` holds other bytes (md5 {md5}, not the expected one): downloading it again",
                dest.display()
            );
        }
        // The holder of the lock before us may have renamed or removed this inode.
        let ours = file.metadata().map_err(write_err)?.ino();
        match std::fs::metadata(&path) {
            Ok(m) if m.ino() == ours => {}
            _ => continue,
        }
        let mut hasher = Md5::new();
        let mut reader = &file;
        let mut buf = vec![0u8; CHUNK_SIZE];
        let mut len = 0u64;
        loop {
            let n = std::io::Read::read(&mut reader, &mut buf).map_err(|source| {
                TransferError::Read {
                    path: path.clone(),
                    source,
                }
            })?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            len += n as u64;
        }
        let mut file = file;
        file.seek(std::io::SeekFrom::End(0)).map_err(write_err)?;
        return Ok(Opened::Partial(Partial {
            file,
            path,
            len,
            hasher,
        }));
    }
}

impl Partial {
    /// On giving up: an empty `.part` is removed (there is nothing to resume).
    fn give_up(&self) {
        if self.len == 0 {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// Empties the file: the download starts again from byte 0. Blocking.
    fn reset(&mut self) -> Result<(), TransferError> {
        use std::io::Seek as _;
        let write_err = |source| TransferError::Write {
            path: self.path.clone(),
            source,
        };
        self.file.set_len(0).map_err(write_err)?;
        self.file
            .seek(std::io::SeekFrom::Start(0))
            .map_err(write_err)?;
        self.len = 0;
        self.hasher = Md5::new();
        Ok(())
    }
}

/// Runs blocking work on the `.part` file off the runtime's threads.
async fn on_partial<T: Send + 'static>(
    mut partial: Partial,
    work: impl FnOnce(&mut Partial) -> Result<T, TransferError> + Send + 'static,
) -> Result<(Partial, T), TransferError> {
    let path = partial.path.clone();
    tokio::task::spawn_blocking(move || work(&mut partial).map(|t| (partial, t)))
        .await
        .map_err(|source| TransferError::Worker { path, source })?
}

/// Appends the body `stream` to `partial`, hashing it; returns the partial and the error
/// that interrupted the stream, if any (a local write failure is an `Err`). Progress is
/// reported as bytes of the whole file out of `total`.
async fn append_stream<S>(
    stream: S,
    partial: Partial,
    total: u64,
    progress: &ProgressRef,
) -> Result<(Partial, Option<reqwest::Error>), TransferError>
where
    S: futures_util::Stream<Item = Result<Bytes, reqwest::Error>>,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let path = partial.path.clone();
    let partial_len = partial.len;
    let writer = tokio::task::spawn_blocking(move || {
        let mut partial = partial;
        while let Some(chunk) = rx.blocking_recv() {
            std::io::Write::write_all(&mut partial.file, &chunk).map_err(|source| {
                TransferError::Write {
                    path: partial.path.clone(),
                    source,
                }
            })?;
            partial.hasher.update(&chunk);
            partial.len += chunk.len() as u64;
        }
        Ok::<_, TransferError>(partial)
    });
    let mut stream = std::pin::pin!(stream);
    let mut pending = bytes::BytesMut::new();
    let mut interrupted = None;
    let mut done = partial_len;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => {
                done += chunk.len() as u64;
                pending.extend_from_slice(&chunk);
                if pending.len() >= CHUNK_SIZE && tx.send(pending.split().freeze()).await.is_err() {
                    break; // the writer failed: its error is returned below
                }
                if let Some(p) = progress {
                    p.report(done, total.max(done));
                }
            }
            Err(e) => {
                interrupted = Some(e);
                break;
            }
        }
    }
    if !pending.is_empty() {
        let _ = tx.send(pending.split().freeze()).await;
    }
    drop(tx);
    let partial = writer
        .await
        .map_err(|source| TransferError::Worker { path, source })??;
    Ok((partial, interrupted))
}

/// `start` of a `Content-Range: bytes start-end/total` header, and `total` when known.
fn content_range(headers: &reqwest::header::HeaderMap) -> Option<(u64, Option<u64>)> {
    let value = headers.get(reqwest::header::CONTENT_RANGE)?.to_str().ok()?;
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let start = range.split_once('-')?.0.trim().parse().ok()?;
    Some((start, total.trim().parse().ok()))
}

/// The file's whole length from a `Content-Range` header (`bytes */total`, as a 416 answer
/// carries it, or `bytes start-end/total`); `None` when absent or unknown (`*`).
fn complete_length(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let value = headers.get(reqwest::header::CONTENT_RANGE)?.to_str().ok()?;
    let rest = value.trim().strip_prefix("bytes ")?;
    rest.split_once('/')?.1.trim().parse().ok()
}

/// A validator for `If-Range`: a strong `ETag`, else `Last-Modified`.
fn validator(headers: &reqwest::header::HeaderMap) -> Option<reqwest::header::HeaderValue> {
    headers
        .get(reqwest::header::ETAG)
        .filter(|v| !v.as_bytes().starts_with(b"W/"))
        .or_else(|| headers.get(reqwest::header::LAST_MODIFIED))
        .cloned()
}

/// Downloads `url` to `dest` through `<dest>.part`: resumes what an earlier call left
/// there, retries a broken connection from where it stopped (HTTP `Range`), hashes while
/// writing, and renames the finished file over `dest` atomically. With `expected_md5`, a
/// mismatch removes the `.part` and keeps nothing (if the mismatch may come from stale bytes
/// of an earlier call, the download is first repeated once from the start). A `.part` that
/// already holds the whole file (the server answers 416 to the range after it, and its length
/// is the one the server names or its md5 the expected one) is verified and renamed into
/// place, not downloaded again.
///
/// `bearer` is sent as `Authorization: Bearer` (never in the URL); a redirect to another
/// origin drops it.
///
/// Dropping the future keeps the `.part` for the next call.
pub async fn download_resumable(
    http: &crate::http::HttpClient,
    url: &str,
    dest: &Path,
    expected_md5: Option<&str>,
    policy: &crate::retry::RetryPolicy,
    progress: ProgressRef,
    bearer: Option<&crate::redact::Secret>,
) -> Result<Downloaded, DownloadError> {
    use crate::retry::{Decision, Outcome, Replay, RetryState};
    let shown = crate::redact::RedactedUrl::redact_str(url);
    let parsed = reqwest::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| DownloadError::BadUrl { url: shown.clone() })?;
    let client = http.client().map_err(|source| DownloadError::Setup {
        url: shown.clone(),
        source,
    })?;
    let expected = expected_md5.map(|m| m.trim().trim_start_matches("md5:").to_ascii_lowercase());
    let dest_owned = dest.to_path_buf();
    let wanted = expected.clone();
    let opened = tokio::task::spawn_blocking(move || open_partial(&dest_owned, wanted.as_deref()))
        .await
        .map_err(|source| TransferError::Worker {
            path: dest.to_path_buf(),
            source,
        })??;
    let mut partial = match opened {
        Opened::Partial(p) => p,
        Opened::Present { md5, bytes } => {
            log::info!("`{}` is already there: kept as it is", dest.display());
            return Ok(Downloaded {
                md5,
                bytes,
                resumed_from: 0,
                range_requests: 0,
                already_present: true,
            });
        }
    };
    let resumed_from = partial.len;
    let mut stale_possible = resumed_from > 0;
    if resumed_from > 0 {
        log::info!(
            "resuming the download of `{shown}` at byte {resumed_from} (`{}`)",
            partial.path.display()
        );
    }
    let mut range_requests = 0u32;
    let mut if_range = None;
    let mut state = RetryState::new(policy.clone(), Replay::Always);
    let mut stalls = 0u32;
    loop {
        let attempt = state.start_attempt();
        let mut request = client.get(parsed.clone());
        if let Some(token) = bearer {
            request = request.bearer_auth(token.expose());
        }
        let asked_from = partial.len;
        if asked_from > 0 {
            request = request.header(reqwest::header::RANGE, format!("bytes={asked_from}-"));
            if let Some(v) = &if_range {
                request = request.header(reqwest::header::IF_RANGE, v);
            }
            range_requests += 1;
        }
        let retry_or = |state: &mut RetryState, outcome: Outcome<'_>| -> Option<Duration> {
            match state.decide(outcome) {
                Decision::RetryAfter(wait) => Some(wait),
                Decision::GiveUp { .. } => None,
            }
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                let e = e.without_url();
                match retry_or(&mut state, Outcome::Transport(&e)) {
                    Some(wait) => {
                        log::warn!(
                            "downloading `{shown}`: {}; retry {attempt} in {:.1}s",
                            crate::errchain::chain(&e),
                            wait.as_secs_f64()
                        );
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    None => {
                        partial.give_up();
                        return Err(DownloadError::Transport {
                            url: shown,
                            attempts: attempt,
                            kept: partial.len,
                            part: partial.path.clone(),
                            source: e,
                        });
                    }
                }
            }
        };
        let status = response.status().as_u16();
        let mut total = response.content_length();
        // The `.part` already holds the whole file: nothing to append.
        let complete = match status {
            206 if asked_from > 0 => match content_range(response.headers()) {
                Some((start, whole)) if start == asked_from => {
                    total = whole.or(total.map(|n| n + asked_from));
                    false
                }
                _ => {
                    log::info!("`{shown}` answered an unexpected range: downloading it again from the start");
                    (partial, ()) = on_partial(partial, Partial::reset).await?;
                    continue;
                }
            },
            200 => {
                if asked_from > 0 {
                    log::info!(
                        "`{shown}` sent the whole file instead of the range from byte {asked_from} \
                         (no Range support, or it changed): starting again from 0"
                    );
                    (partial, ()) = on_partial(partial, Partial::reset).await?;
                    stale_possible = false;
                }
                false
            }
            416 if asked_from > 0 => {
                // Nothing left to send from there: the `.part` may already hold the whole
                // file (a call that stopped between its last byte and the rename). Such a
                // `.part` is verified below and renamed into place, not downloaded again.
                let whole = complete_length(response.headers());
                let md5 = format!("{:x}", partial.hasher.clone().finalize());
                let complete =
                    whole == Some(asked_from) || expected.as_deref().is_some_and(|e| e == md5);
                if complete {
                    log::info!(
                        "`{shown}` has nothing after byte {asked_from}: `{}` already holds the \
                         whole file",
                        partial.path.display()
                    );
                    true
                } else {
                    log::info!(
                        "`{shown}` refused the range from byte {asked_from}: starting again from 0"
                    );
                    (partial, ()) = on_partial(partial, Partial::reset).await?;
                    stale_possible = false;
                    continue;
                }
            }
            _ => {
                let retry_after = crate::retry::parse_retry_after(response.headers());
                let reason = response
                    .status()
                    .canonical_reason()
                    .map(|r| format!(" {r}"))
                    .unwrap_or_default();
                let body = response.text().await.unwrap_or_default();
                let said: String = body.trim().chars().take(300).collect();
                let detail = if said.is_empty() {
                    reason
                } else {
                    format!("{reason}: {said}")
                };
                match state.decide(Outcome::Status {
                    status,
                    retry_after,
                }) {
                    Decision::RetryAfter(wait) => {
                        log::warn!(
                            "downloading `{shown}`: the server answered {status}{detail}; retry {attempt} in {:.1}s",
                            wait.as_secs_f64()
                        );
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    Decision::GiveUp { note } => {
                        partial.give_up();
                        let shown_note =
                            note.as_ref().map(|n| format!("; {n}")).unwrap_or_default();
                        return Err(DownloadError::Status {
                            url: shown,
                            status,
                            detail: format!("{detail}{shown_note}"),
                            body,
                            attempts: attempt,
                            not_retried: note,
                        });
                    }
                }
            }
        };
        if !complete {
            if if_range.is_none() {
                if_range = validator(response.headers());
            }
            let before = partial.len;
            let body_total = total.unwrap_or(0);
            let (back, interrupted) =
                append_stream(response.bytes_stream(), partial, body_total, &progress).await?;
            partial = back;
            if let Some(e) = interrupted {
                // A body cut off mid-way is always worth resuming (reqwest reports it as a
                // decode error, which the generic transport rule does not repeat); the retry
                // budget counts interruptions in a row without progress.
                let e = e.without_url();
                if partial.len > before {
                    // Progress: a flaky connection gets a fresh retry budget.
                    stalls = 0;
                    state = RetryState::new(policy.clone(), Replay::Always);
                    state.start_attempt();
                }
                stalls += 1;
                if stalls > policy.max_retries {
                    partial.give_up();
                    return Err(DownloadError::Transport {
                        url: shown,
                        attempts: attempt,
                        kept: partial.len,
                        part: partial.path.clone(),
                        source: e,
                    });
                }
                let wait = policy.delay(stalls, None);
                log::warn!(
                    "downloading `{shown}` stopped at byte {} ({}); resuming in {:.1}s",
                    partial.len,
                    crate::errchain::chain(&e),
                    wait.as_secs_f64()
                );
                tokio::time::sleep(wait).await;
                continue;
            }
        }
        let md5 = format!("{:x}", partial.hasher.clone().finalize());
        if let Some(expected) = &expected {
            if *expected != md5 {
                if stale_possible {
                    log::warn!(
                        "`{}` resumed from an earlier download does not match md5 {expected}: \
                         downloading it again from the start",
                        dest.display()
                    );
                    (partial, ()) = on_partial(partial, Partial::reset).await?;
                    stale_possible = false;
                    state = RetryState::new(policy.clone(), Replay::Always);
                    continue;
                }
                let path = partial.path.clone();
                drop(partial);
                let _ = std::fs::remove_file(&path);
                return Err(TransferError::DownloadChecksum {
                    path: dest.to_path_buf(),
                    expected: expected.clone(),
                    actual: md5,
                }
                .into());
            }
        }
        let bytes = partial.len;
        let target = dest.to_path_buf();
        on_partial(partial, move |p| {
            let write_err = |source| TransferError::Write {
                path: target.clone(),
                source,
            };
            p.file.sync_all().map_err(write_err)?;
            std::fs::rename(&p.path, &target).map_err(write_err)?;
            if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
                if let Ok(d) = std::fs::File::open(dir) {
                    let _ = d.sync_all();
                }
            }
            Ok(())
        })
        .await?;
        log::info!(
            "downloaded `{shown}` to `{}` ({bytes} bytes, md5 {md5}{})",
            dest.display(),
            if resumed_from > 0 || range_requests > 0 {
                format!(", {range_requests} range request(s)")
            } else {
                String::new()
            }
        );
        return Ok(Downloaded {
            md5,
            bytes,
            resumed_from,
            range_requests,
            already_present: false,
        });
    }
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

    /// A one-file HTTP server for resumable downloads: honours `Range: bytes=N-` unless
    /// `ranges` is off, and cuts the first `drops` responses after half of what they send.
    mod server {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{Arc, Mutex};
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

        pub(super) struct Server {
            pub(super) url: String,
            /// The `Range` header of each request (`None`: none sent).
            pub(super) ranges_seen: Arc<Mutex<Vec<Option<String>>>>,
        }

        pub(super) async fn start(data: Vec<u8>, ranges: bool, drops: usize) -> Server {
            start_with(data, ranges, drops, true).await
        }

        /// [`start`]; `unsatisfied_length`: a 416 answer names the file's length
        /// (`Content-Range: bytes */N`, as RFC 9110 asks), else it says nothing.
        pub(super) async fn start_with(
            data: Vec<u8>,
            ranges: bool,
            drops: usize,
            unsatisfied_length: bool,
        ) -> Server {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/x.sif", listener.local_addr().unwrap());
            let seen = Arc::new(Mutex::new(Vec::new()));
            let seen2 = Arc::clone(&seen);
            let data = Arc::new(data);
            let served = Arc::new(AtomicUsize::new(0));
            tokio::spawn(async move {
                loop {
                    let Ok((mut sock, _)) = listener.accept().await else {
                        return;
                    };
                    let (data, seen, served) =
                        (Arc::clone(&data), Arc::clone(&seen2), Arc::clone(&served));
                    tokio::spawn(async move {
                        let mut head = Vec::new();
                        let mut b = [0u8; 1];
                        while !head.ends_with(b"\r\n\r\n") {
                            if sock.read(&mut b).await.unwrap_or(0) == 0 {
                                return;
                            }
                            head.push(b[0]);
                        }
                        let head = String::from_utf8_lossy(&head).to_string();
                        let range = head.lines().find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("range").then(|| v.trim().to_owned())
                        });
                        seen.lock().unwrap().push(range.clone());
                        let from = range
                            .as_deref()
                            .filter(|_| ranges)
                            .and_then(|r| r.strip_prefix("bytes="))
                            .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok());
                        let (status, body, extra) = match from {
                            Some(f) if f >= data.len() => (
                                "416 Range Not Satisfiable",
                                &data[..0],
                                if unsatisfied_length {
                                    format!("Content-Range: bytes */{}\r\n", data.len())
                                } else {
                                    String::new()
                                },
                            ),
                            Some(f) => (
                                "206 Partial Content",
                                &data[f..],
                                format!(
                                    "Content-Range: bytes {f}-{}/{}\r\n",
                                    data.len() - 1,
                                    data.len()
                                ),
                            ),
                            None => ("200 OK", &data[..], String::new()),
                        };
                        let reply = format!(
                            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nETag: \"v1\"\r\n{extra}Connection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = sock.write_all(reply.as_bytes()).await;
                        let cut = served.fetch_add(1, Ordering::SeqCst) < drops;
                        let send = if cut { &body[..body.len() / 2] } else { body };
                        let _ = sock.write_all(send).await;
                        let _ = sock.shutdown().await;
                    });
                }
            });
            Server {
                url,
                ranges_seen: seen,
            }
        }
    }

    fn fast_retries() -> crate::retry::RetryPolicy {
        crate::retry::RetryPolicy {
            max_retries: 2,
            initial_backoff: std::time::Duration::from_millis(10),
            ..crate::retry::RetryPolicy::default()
        }
    }

    /// `download_resumable` as most tests call it: the test client, fast retries, no
    /// progress, no token.
    async fn fetch(url: &str, dest: &Path, md5: Option<&str>) -> Result<Downloaded, DownloadError> {
        download_resumable(&http(), url, dest, md5, &fast_retries(), None, None).await
    }

    fn http() -> crate::http::HttpClient {
        crate::http::HttpClient::new(crate::http::HttpSettings {
            user_agent: "t".into(),
            connect_timeout: std::time::Duration::from_secs(5),
            read_timeout: std::time::Duration::from_secs(5),
            follow_redirects: true,
        })
        .unwrap()
    }

    fn payload() -> (Vec<u8>, String) {
        let data: Vec<u8> = (0..(CHUNK_SIZE * 3 + 1234))
            .map(|i| (i % 253) as u8)
            .collect();
        let md5 = format!("{:x}", Md5::digest(&data));
        (data, md5)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_connection_resumes_with_a_range_request() {
        let (data, md5) = payload();
        let srv = server::start(data.clone(), true, 1).await;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.sif");
        let got = fetch(&srv.url, &dest, Some(&md5)).await.unwrap();
        assert_eq!(got.md5, md5);
        assert_eq!(got.bytes, data.len() as u64);
        assert_eq!(got.range_requests, 1);
        assert_eq!(std::fs::read(&dest).unwrap(), data);
        let seen = srv.ranges_seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], None);
        assert!(
            seen[1]
                .as_deref()
                .is_some_and(|r| r.starts_with("bytes=") && r != "bytes=0-"),
            "{seen:?}"
        );
        assert_eq!(leftovers(dir.path()), vec!["x.sif".to_owned()]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_downloads_of_one_file_download_it_once() {
        let (data, md5) = payload();
        let srv = server::start(data.clone(), true, 0).await;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.sif");
        let (client, policy) = (http(), fast_retries());
        let (a, b) = tokio::join!(
            download_resumable(&client, &srv.url, &dest, Some(&md5), &policy, None, None),
            download_resumable(&client, &srv.url, &dest, Some(&md5), &policy, None, None),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(
            (a.md5.as_str(), b.md5.as_str()),
            (md5.as_str(), md5.as_str())
        );
        assert_eq!(
            u8::from(a.already_present) + u8::from(b.already_present),
            1,
            "{a:?} {b:?}"
        );
        assert_eq!(srv.ranges_seen.lock().unwrap().len(), 1);
        assert_eq!(std::fs::read(&dest).unwrap(), data);
        assert_eq!(leftovers(dir.path()), vec!["x.sif".to_owned()]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_existing_file_is_kept_and_no_part_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.sif");
        std::fs::write(&dest, b"hello world").unwrap();
        let got = fetch("http://127.0.0.1:9/never", &dest, None)
            .await
            .unwrap();
        assert!(got.already_present);
        assert_eq!(got.md5, "5eb63bbbe01eeed093cb22bb8f5acdc3");
        assert_eq!(leftovers(dir.path()), vec!["x.sif".to_owned()]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_existing_file_with_other_bytes_is_replaced() {
        let (data, md5) = payload();
        let srv = server::start(data.clone(), true, 0).await;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.sif");
        // An older version under the same name.
        std::fs::write(&dest, b"hello world").unwrap();
        let got = fetch(&srv.url, &dest, Some(&md5)).await.unwrap();
        assert!(!got.already_present);
        assert_eq!(got.md5, md5);
        assert_eq!(std::fs::read(&dest).unwrap(), data);
        assert_eq!(leftovers(dir.path()), vec!["x.sif".to_owned()]);
        // The same bytes again: kept, nothing downloaded.
        let again = fetch("http://127.0.0.1:9/never", &dest, Some(&md5))
            .await
            .unwrap();
        assert!(again.already_present);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_without_range_support_restarts_cleanly() {
        let (data, md5) = payload();
        let srv = server::start(data.clone(), false, 1).await;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.sif");
        let got = fetch(&srv.url, &dest, Some(&md5)).await.unwrap();
        assert_eq!(got.md5, md5);
        assert_eq!(std::fs::read(&dest).unwrap(), data);
        assert_eq!(leftovers(dir.path()), vec!["x.sif".to_owned()]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_part_left_by_an_earlier_call_is_resumed() {
        let (data, md5) = payload();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.sif");
        // The earlier call gave up after the connection broke, keeping what arrived.
        let srv = server::start(data.clone(), true, usize::MAX).await;
        let no_retries = crate::retry::RetryPolicy {
            max_retries: 0,
            ..fast_retries()
        };
        let err = download_resumable(
            &http(),
            &srv.url,
            &dest,
            Some(&md5),
            &no_retries,
            None,
            None,
        )
        .await
        .unwrap_err();
        let text = crate::errchain::chain(&err);
        assert!(matches!(err, DownloadError::Transport { .. }), "{text}");
        assert!(text.contains("x.sif.part"), "{text}");
        let kept = std::fs::metadata(partial_path(&dest)).unwrap().len();
        assert!(kept > 0 && kept < data.len() as u64, "{kept}");
        assert!(!dest.exists());
        let srv = server::start(data.clone(), true, 0).await;
        let got = fetch(&srv.url, &dest, Some(&md5)).await.unwrap();
        assert_eq!(got.resumed_from, kept);
        assert_eq!(got.md5, md5);
        assert_eq!(std::fs::read(&dest).unwrap(), data);
        assert_eq!(
            srv.ranges_seen.lock().unwrap()[0],
            Some(format!("bytes={kept}-"))
        );
        assert_eq!(leftovers(dir.path()), vec!["x.sif".to_owned()]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_part_holding_the_whole_file_is_kept_when_the_range_is_refused() {
        let (data, md5) = payload();
        let len = data.len() as u64;
        // (the server names the length on 416, the md5 is known)
        for (names_length, expected) in [
            (true, Some(md5.as_str())),
            (true, None),
            (false, Some(md5.as_str())),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("x.sif");
            // An earlier call wrote every byte, then stopped before its rename.
            std::fs::write(partial_path(&dest), &data).unwrap();
            let srv = server::start_with(data.clone(), true, 0, names_length).await;
            let got = fetch(&srv.url, &dest, expected).await.unwrap();
            let case = format!("names its length: {names_length}, md5: {expected:?}");
            assert_eq!(got.md5, md5, "{case}");
            assert_eq!((got.bytes, got.resumed_from), (len, len), "{case}");
            assert!(!got.already_present, "{case}");
            assert_eq!(std::fs::read(&dest).unwrap(), data, "{case}");
            assert_eq!(
                srv.ranges_seen.lock().unwrap().clone(),
                vec![Some(format!("bytes={len}-"))],
                "one request, answered 416; nothing downloaded again ({case})"
            );
            assert_eq!(leftovers(dir.path()), vec!["x.sif".to_owned()], "{case}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_whole_length_part_with_other_bytes_is_downloaded_again() {
        let (data, md5) = payload();
        let len = data.len();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.sif");
        // As long as the file, other bytes: the md5 tells.
        std::fs::write(partial_path(&dest), vec![7u8; len]).unwrap();
        let srv = server::start(data.clone(), true, 0).await;
        let got = fetch(&srv.url, &dest, Some(&md5)).await.unwrap();
        assert_eq!(got.md5, md5);
        assert_eq!(std::fs::read(&dest).unwrap(), data);
        assert_eq!(
            srv.ranges_seen.lock().unwrap().clone(),
            vec![Some(format!("bytes={len}-")), None]
        );
        assert_eq!(leftovers(dir.path()), vec!["x.sif".to_owned()]);
        // Longer than the file: not the file, downloaded again.
        std::fs::remove_file(&dest).unwrap();
        std::fs::write(partial_path(&dest), vec![7u8; len + 10]).unwrap();
        let got = fetch(&srv.url, &dest, None).await.unwrap();
        assert_eq!(got.md5, md5);
        assert_eq!(std::fs::read(&dest).unwrap(), data);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_checksum_mismatch_keeps_nothing_even_after_resuming() {
        let (data, md5) = payload();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.sif");
        // Stale bytes from "an earlier download" of another file: retried once from 0.
        std::fs::write(partial_path(&dest), b"stale bytes").unwrap();
        let srv = server::start(data.clone(), true, 0).await;
        let got = fetch(&srv.url, &dest, Some(&md5)).await.unwrap();
        assert_eq!(got.md5, md5);
        std::fs::remove_file(&dest).unwrap();
        let wrong = "0".repeat(32);
        let err = fetch(&srv.url, &dest, Some(&wrong)).await.unwrap_err();
        assert!(
            matches!(
                err,
                DownloadError::Local(TransferError::DownloadChecksum { .. })
            ),
            "{err:?}"
        );
        assert!(leftovers(dir.path()).is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_error_status_names_the_url_without_its_token() {
        let dir = tempfile::tempdir().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            use std::io::{Read as _, Write as _};
            if let Ok((mut s, _)) = listener.accept() {
                let mut b = [0u8; 1024];
                let _ = s.read(&mut b);
                let _ = s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nno record");
            }
        });
        let url = format!("http://{addr}/x.sif?token=SECRET");
        let err = fetch(&url, &dir.path().join("x.sif"), None)
            .await
            .unwrap_err();
        let text = crate::errchain::chain(&err);
        assert!(text.contains("404 Not Found: no record"), "{text}");
        assert!(!text.contains("SECRET"), "{text}");
        assert!(
            leftovers(dir.path()).is_empty(),
            "{:?}",
            leftovers(dir.path())
        );
    }
}
