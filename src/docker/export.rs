//! Exporting an image as a `docker save` tar: a stream, or a file written atomically.

use std::path::Path;

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt as _};

use super::error::api;
use super::{DockerError, Engine};

impl Engine {
    /// The image as a `docker save` tar stream.
    pub fn export(&self, image: &str) -> impl Stream<Item = Result<Bytes, DockerError>> + '_ {
        let step = format!("exporting `{image}`");
        self.docker
            .export_image(image)
            .map_err(move |e| api(step.clone())(e))
    }

    /// Writes `image` as a `docker save` tar to `path`, streamed and atomically (through
    /// [`crate::fsutil::AtomicFile`]: a failed or cancelled export leaves no partial tar
    /// behind), hashing it in the same pass. Returns its size and md5.
    pub async fn export_to_file(
        &self,
        image: &str,
        path: &Path,
        progress: crate::transfer::ProgressRef,
    ) -> Result<crate::transfer::Sent, DockerError> {
        use crate::transfer::{write_stream, StreamError};
        self.image_id(image).await?;
        let sent = match write_stream(self.export(image), path, None, 0, progress).await {
            Ok(sent) => sent,
            Err(StreamError::Source(e)) => return Err(e),
            Err(StreamError::Local(e)) => return Err(DockerError::Local(e)),
        };
        log::info!(
            "exported `{image}` to `{}` ({} bytes)",
            path.display(),
            sent.bytes
        );
        Ok(sent)
    }
}
