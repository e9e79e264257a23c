//! Files of a deposition: list and delete them, stream an upload (md5 in the same pass,
//! checked against Zenodo's), and download a published file (md5 checked, nothing kept on a
//! mismatch).

use std::path::Path;

use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Method, Url};
use serde_json::Value;

use super::client::{Call, ZenodoClient};
use super::deposition::normalize_md5;
use super::display_url;
use super::error::{ZenodoError, ZenodoErrorKind};
use crate::retry::Replay;
use crate::transfer::{self, ProgressRef, Sent};

/// The result of an upload: Zenodo's bucket object and what we sent.
#[derive(Debug, Clone)]
pub struct Uploaded {
    /// The bucket object (`key`, `size`, `checksum: "md5:<hex>"`, …).
    pub object: Value,
    pub md5: String,
    pub size: u64,
}

impl ZenodoClient {
    /// `GET …/{id}/files` (Z8).
    pub async fn list_files(&self, id: u64) -> Result<Vec<Value>, ZenodoError> {
        let url = self.depositions_url(&format!("{id}/files"))?;
        let step = format!("list the files of deposition `{id}`");
        let call = Call {
            step: &step,
            method: Method::GET,
            url: &url,
            replay: Replay::Always,
        };
        self.send_for_array(&call).await
    }

    /// `DELETE …/{id}/files/{file_id}` (Z9).
    pub async fn delete_file(&self, id: u64, file_id: &str) -> Result<(), ZenodoError> {
        let mut url = self.depositions_url(&format!("{id}/files"))?;
        url.path_segments_mut()
            .map_err(|()| {
                ZenodoError::new(
                    "build a Zenodo URL",
                    ZenodoErrorKind::InvalidUrl {
                        url: display_url(&self.config().base_url),
                        reason: "the base URL cannot have paths".into(),
                    },
                )
            })?
            .push(file_id);
        self.delete_at(
            &format!("delete file `{file_id}` of deposition `{id}`"),
            &url,
        )
        .await
    }

    /// `PUT {bucket}/{filename}` (Z10), streamed and md5-checked (see [`Self::upload_to`]).
    pub async fn upload_file(
        &self,
        bucket_url: &str,
        filename: &str,
        path: &Path,
        progress: ProgressRef,
    ) -> Result<Uploaded, ZenodoError> {
        let mut url = self.caller_url("upload to Zenodo", bucket_url, &[])?;
        let shown = display_url(&url);
        url.path_segments_mut()
            .map_err(|()| {
                ZenodoError::new(
                    format!("upload `{filename}`"),
                    ZenodoErrorKind::InvalidUrl {
                        url: shown,
                        reason: "a bucket URL must be hierarchical".into(),
                    },
                )
            })?
            .pop_if_empty()
            .push(filename);
        self.upload_at(&url, path, progress).await
    }

    /// Streams `path` to `url` with `PUT` (a bucket object URL `…/api/files/<bucket>/<name>`),
    /// hashing in the same pass, and checks the md5 Zenodo answers. On a mismatch the object
    /// is deleted again and the call fails.
    pub async fn upload_to(
        &self,
        url: &str,
        path: &Path,
        progress: ProgressRef,
    ) -> Result<Uploaded, ZenodoError> {
        let url = self.caller_url("upload to Zenodo", url, &[])?;
        self.upload_at(&url, path, progress).await
    }

    async fn upload_at(
        &self,
        url: &Url,
        path: &Path,
        progress: ProgressRef,
    ) -> Result<Uploaded, ZenodoError> {
        let name = url
            .path_segments()
            .and_then(|mut s| s.next_back())
            .map(percent_decode)
            .unwrap_or_default();
        let step = format!(
            "upload `{}` as `{name}` to `{}`",
            path.display(),
            display_url(url)
        );
        let call = Call {
            step: &step,
            method: Method::PUT,
            url,
            replay: Replay::Always,
        };
        log::info!("uploading `{}` to `{}`", path.display(), display_url(url));
        let (answer, handle) = self
            .execute(&call, || {
                let upload = transfer::file_upload(path, progress.clone())
                    .map_err(|e| ZenodoError::new(&step, ZenodoErrorKind::Local(e)))?;
                let (body, len, handle) = upload.into_body();
                let rb = self
                    .request(Method::PUT, url)?
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, len)
                    .body(body);
                Ok((rb, handle))
            })
            .await?;
        if !answer.ok() {
            return Err(Self::status_error(&call, &answer));
        }
        let sent: Sent = handle
            .finish()
            .await
            .map_err(|e| ZenodoError::new(&step, ZenodoErrorKind::Local(e)))?;
        let object = Self::decode(&call, &answer)?;
        let remote = object
            .get("checksum")
            .and_then(Value::as_str)
            .map(normalize_md5)
            .ok_or_else(|| Self::shape_error(&call, "the bucket object has no `checksum`"))?;
        if remote != sent.md5 {
            let cleanup = match self
                .delete_at(&format!("remove the corrupt upload `{name}`"), url)
                .await
            {
                Ok(()) => "the upload was removed",
                Err(e) => {
                    log::warn!("{}", crate::errchain::chain(&e));
                    "removing the upload failed too: delete it by hand"
                }
            };
            return Err(ZenodoError::new(
                step,
                ZenodoErrorKind::ChecksumMismatch {
                    file: name,
                    local: sent.md5,
                    remote,
                    cleanup,
                },
            ));
        }
        log::info!(
            "uploaded `{name}` ({} bytes, md5 {}) in {} attempt(s)",
            sent.bytes,
            sent.md5,
            answer.attempts
        );
        Ok(Uploaded {
            object,
            md5: sent.md5,
            size: sent.bytes,
        })
    }

    /// Downloads `url` into `dest` (following redirects such as `/record/…` → `/records/…`)
    /// with [`transfer::download_resumable`]: through `<dest>.part`, resumed where an
    /// earlier call or a broken connection stopped, hashed in the same pass, renamed into
    /// place; with `expected_md5`, a mismatch keeps nothing and fails. A `dest` already
    /// there is kept. The token goes only to the configured Zenodo origin.
    pub async fn download(
        &self,
        url: &str,
        dest: &Path,
        expected_md5: Option<&str>,
        progress: ProgressRef,
    ) -> Result<Sent, ZenodoError> {
        let url = self.caller_url("download from Zenodo", url, &[])?;
        let step = format!("download `{}` to `{}`", display_url(&url), dest.display());
        let bearer = self
            .config()
            .token
            .as_ref()
            .filter(|_| url.origin() == self.config().base_url.origin());
        let got = transfer::download_resumable(
            self.http(),
            url.as_str(),
            dest,
            expected_md5,
            &self.config().retry,
            progress,
            bearer,
        )
        .await
        .map_err(|e| ZenodoError::new(&step, self.download_error(&url, e)))?;
        Ok(Sent {
            md5: got.md5,
            bytes: got.bytes,
        })
    }
}

impl ZenodoClient {
    /// A failed download in the words of the Zenodo client's errors.
    fn download_error(&self, url: &reqwest::Url, err: transfer::DownloadError) -> ZenodoErrorKind {
        use transfer::DownloadError;
        match err {
            DownloadError::BadUrl { url } => ZenodoErrorKind::InvalidUrl {
                url,
                reason: "not an http(s) URL".into(),
            },
            DownloadError::Setup { source, .. } => ZenodoErrorKind::Client(source),
            DownloadError::Status {
                status,
                body,
                attempts,
                not_retried,
                ..
            } => {
                let answer = super::client::Answer {
                    status,
                    body: body.into_bytes().into(),
                    attempts,
                    ambiguous: false,
                    not_retried,
                };
                let call = Call {
                    step: "",
                    method: Method::GET,
                    url,
                    replay: Replay::Always,
                };
                ZenodoClient::status_error(&call, &answer).kind
            }
            DownloadError::Transport {
                attempts,
                kept,
                part,
                source,
                ..
            } => {
                let timed_out = crate::http::timeout_note(&source, self.http().settings())
                    .map(|n| format!(": {n}"))
                    .unwrap_or_default();
                ZenodoErrorKind::Transport {
                    method: Method::GET,
                    url: display_url(url),
                    attempts,
                    note: format!(
                        "{timed_out}; the {kept} bytes received are kept in `{}` and the next download resumes from there",
                        part.display()
                    ),
                    source,
                }
            }
            DownloadError::Local(e) => ZenodoErrorKind::Local(e),
        }
    }
}

/// A URL path segment decoded (`a%20b.sif` → `a b.sif`); a stray `%` stays as it is.
fn percent_decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b.sif"), "a b.sif");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
