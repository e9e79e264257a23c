//! Building images: a tar context with the Dockerfile, the build log streamed line by line,
//! a failing step named with the last log lines; recipe and group labels.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bollard::query_parameters::BuildImageOptionsBuilder;
use bytes::Bytes;
use futures_util::StreamExt as _;

use super::error::api;
use super::{push_tail, strip_ansi, DockerError, Engine};
use super::{
    CREATED_BY_LABEL, CREATED_BY_VALUE, MODEL_GROUP_LABEL, RECIPE_LABEL, ZOO_COMMIT_LABEL,
};

impl Engine {
    /// Builds `image` from `dockerfile` (text) with the files of `context_dir` (if any) as
    /// context. Each build log line goes to `on_line`; a failing step raises
    /// [`DockerError::Build`] naming the step with the last log lines.
    pub async fn build(
        &self,
        image: &str,
        dockerfile: &str,
        context_dir: Option<&Path>,
        labels: &HashMap<String, String>,
        nocache: bool,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<String, DockerError> {
        let context = Context {
            dir: context_dir.map(Path::to_path_buf),
            files: Vec::new(),
        };
        self.build_context(image, dockerfile, context, labels, nocache, on_line)
            .await
    }

    /// Builds `recipe.image` from its recipe: the Dockerfile and the files it needs
    /// (environment files) go into the build context from memory, no checkout needed. The
    /// image is labelled with the recipe hash and `labels`.
    pub async fn build_recipe(
        &self,
        recipe: &crate::recipes::ImageRecipe,
        labels: &HashMap<String, String>,
        nocache: bool,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<String, DockerError> {
        let context = Context {
            dir: None,
            files: recipe.context.clone(),
        };
        let mut labels = labels.clone();
        labels.insert(RECIPE_LABEL.into(), recipe.hash.clone());
        self.build_context(
            &recipe.image,
            &recipe.text,
            context,
            &labels,
            nocache,
            on_line,
        )
        .await
    }

    async fn build_context(
        &self,
        image: &str,
        dockerfile: &str,
        context: Context,
        labels: &HashMap<String, String>,
        nocache: bool,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<String, DockerError> {
        let context = {
            let text = dockerfile.to_owned();
            tokio::task::spawn_blocking(move || build_context(&text, &context))
                .await
                .map_err(|e| DockerError::Io {
                    path: PathBuf::from("Dockerfile"),
                    step: "preparing the build context",
                    source: std::io::Error::other(e),
                })??
        };
        let mut labels = labels.clone();
        labels.insert(CREATED_BY_LABEL.into(), CREATED_BY_VALUE.into());
        labels
            .entry(RECIPE_LABEL.into())
            .or_insert_with(|| recipe_hash(dockerfile));
        let options = BuildImageOptionsBuilder::default()
            .dockerfile("Dockerfile")
            .t(image)
            .rm(true)
            .forcerm(true)
            .nocache(nocache)
            .labels(&labels)
            .build();
        let mut stream = self.docker.build_image(
            options,
            None,
            Some(bollard::body_full(Bytes::from(context))),
        );
        let mut tail: Vec<String> = Vec::new();
        let mut step = String::from("(before the first step)");
        let mut image_id = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(text) = info.stream {
                        let text = strip_ansi(&text);
                        for line in text.lines().filter(|l| !l.trim().is_empty()) {
                            if line.starts_with("Step ") {
                                step = line.to_owned();
                            }
                            on_line(line);
                            push_tail(&mut tail, line);
                        }
                    }
                    if let Some(aux) = info.aux.and_then(|a| a.id) {
                        image_id = Some(aux);
                    }
                    if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                        return Err(build_error(image, &step, detail, &tail));
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    return Err(build_error(image, &step, error, &tail));
                }
                Err(e) => return Err(api(format!("build of `{image}`"))(e)),
            }
        }
        match image_id {
            Some(id) => Ok(id),
            None => self.image_id(image).await,
        }
    }
}

/// The content hash of a recipe (sha256 hex of the Dockerfile text).
#[must_use]
pub fn recipe_hash(dockerfile: &str) -> String {
    use sha2::Digest as _;
    format!("{:x}", sha2::Sha256::digest(dockerfile.as_bytes()))
}

/// The labels that say what an image is: its model group and the zoo commit it was built for.
#[must_use]
pub fn group_labels(
    model_group: Option<&str>,
    zoo_commit: Option<&str>,
) -> HashMap<String, String> {
    let mut labels = HashMap::new();
    if let Some(g) = model_group {
        labels.insert(MODEL_GROUP_LABEL.to_owned(), g.to_owned());
    }
    if let Some(c) = zoo_commit {
        labels.insert(ZOO_COMMIT_LABEL.to_owned(), c.to_owned());
    }
    labels
}

fn build_error(image: &str, step: &str, message: String, tail: &[String]) -> DockerError {
    DockerError::Build {
        image: image.to_owned(),
        step: step.to_owned(),
        message: message.trim().to_owned(),
        tail: tail.join("\n"),
    }
}

/// What goes into a build context besides the Dockerfile.
struct Context {
    /// A directory whose files are all added.
    dir: Option<PathBuf>,
    /// Files from memory: (relative path, bytes).
    files: Vec<(String, Vec<u8>)>,
}

/// A tar with `Dockerfile`, the files of `context.dir` and `context.files` (deterministic
/// headers so equal inputs give equal contexts).
fn build_context(dockerfile: &str, context: &Context) -> Result<Vec<u8>, DockerError> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    let io = |path: &Path, step| {
        let path = path.to_path_buf();
        move |source| DockerError::Io { path, step, source }
    };
    if let Some(dir) = &context.dir {
        builder
            .append_dir_all(".", dir)
            .map_err(io(dir, "adding the build context"))?;
    }
    for (path, bytes) in &context.files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, path, bytes.as_slice())
            .map_err(io(Path::new(path), "writing the build context"))?;
    }
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    builder
        .append_data(&mut header, "Dockerfile", dockerfile.as_bytes())
        .map_err(io(Path::new("Dockerfile"), "writing the build context"))?;
    builder
        .into_inner()
        .map_err(io(Path::new("Dockerfile"), "finishing the build context"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_has_the_dockerfile() {
        let none = Context {
            dir: None,
            files: Vec::new(),
        };
        assert_eq!(
            names(&build_context("FROM scratch\n", &none).unwrap()),
            ["Dockerfile"]
        );
        let files = Context {
            dir: None,
            files: vec![("envfiles/e.yml".into(), b"name: e\n".to_vec())],
        };
        let tar_bytes = build_context("FROM scratch\n", &files).unwrap();
        assert_eq!(names(&tar_bytes), ["envfiles/e.yml", "Dockerfile"]);
        assert_eq!(tar_bytes, build_context("FROM scratch\n", &files).unwrap());
    }

    fn names(tar_bytes: &[u8]) -> Vec<String> {
        let mut archive = tar::Archive::new(tar_bytes);
        archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    }
}
