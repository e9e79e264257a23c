//! The conversion pipeline: `docker save` archive → flattened tree → apptainer's
//! additions → squashfs written straight into the SIF → header and descriptors; the SIF
//! appears atomically (temporary file beside it, fsync, rename) with mode 0755.
//!
//! Memory stays bounded whatever the image size: the archive is indexed, never
//! unpacked; file data is read from the archive (or a decompressed layer on disk) when
//! the squashfs is written; only metadata and a few blocks in flight are in memory.
//!
//! Deterministic: the UUID is derived from the image digest and the traceability fields,
//! and every timestamp comes from `SOURCE_DATE_EPOCH` (when set), else from the image's
//! `created`; the same image and options give the same bytes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use md5::Digest as _;

use super::apptainer::{self, Metadata};
use super::archive::ImageArchive;
use super::layers::Flattener;
use super::read::{Arch, Uuid};
use super::squashfs::{self, SquashfsOptions, SquashfsSummary};
use super::tree::Tree;
use super::write::SifBuilder;
use super::{timefmt, SifError};
use crate::docker::{Engine, MODEL_GROUP_LABEL, ZOO_COMMIT_LABEL};
use crate::fsutil::AtomicFile;

/// Label: the image reference the SIF was converted from.
pub const SOURCE_IMAGE_LABEL: &str = "org.kipoi-containers.source-image";
/// Label: the digest of that image (its config digest unless given).
pub const SOURCE_DIGEST_LABEL: &str = "org.kipoi-containers.source-digest";
/// Label: what converted it.
pub const CONVERTER_LABEL: &str = "org.kipoi-containers.converter";

/// How to convert. `Default` converts with the image's own reference and digest, times
/// from `SOURCE_DATE_EPOCH` or the image, all cores and the fast gzip level.
#[derive(Clone, Debug, Default)]
pub struct ConvertOptions {
    /// The image reference to record (deffile `from:`, labels). Default: the reference
    /// converted, else the archive's first tag, else the image digest.
    pub source_image: Option<String>,
    /// The image digest to record. Default: the image id (sha256 of its config).
    pub source_digest: Option<String>,
    /// The Kipoi model group (recorded as `org.kipoi-containers.model-group`).
    pub model_group: Option<String>,
    /// The zoo commit (recorded as `org.kipoi-containers.zoo-commit`).
    pub zoo_commit: Option<String>,
    /// Every timestamp the conversion writes. Default: the `SOURCE_DATE_EPOCH`
    /// environment variable, else the image's `created`, else 0.
    pub source_date_epoch: Option<i64>,
    /// Compression threads. Default: the available cores.
    pub threads: Option<usize>,
    /// gzip level 1..=9. Default: [`squashfs::DEFAULT_LEVEL`].
    pub level: Option<u32>,
    /// Directory for temporary files (decompressed layers, the spooled export).
    /// Default: the output's directory.
    pub workdir: Option<PathBuf>,
}

/// What a conversion produced.
#[derive(Clone, Debug)]
pub struct ConvertReport {
    pub path: PathBuf,
    /// md5 of the whole SIF, hex.
    pub md5: String,
    pub size: u64,
    pub partition_offset: u64,
    pub partition_size: u64,
    pub uuid: String,
    /// The recorded source reference and digest.
    pub source_image: String,
    pub source_digest: String,
    /// Unix seconds used for every timestamp.
    pub time: i64,
    pub layers: usize,
    pub squashfs: SquashfsSummary,
    pub seconds: f64,
}

/// The time every timestamp gets.
fn build_time(opts: &ConvertOptions, created: Option<&str>) -> i64 {
    if let Some(t) = opts.source_date_epoch {
        return t;
    }
    if let Some(t) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        return t;
    }
    created.and_then(timefmt::parse_rfc3339).unwrap_or(0)
}

/// A UUID from a sha256 over the image digest and what the SIF records (version and
/// variant bits set as RFC 4122 name-based UUIDs have them).
fn derive_uuid(parts: &[&str]) -> Uuid {
    let mut h = sha2::Sha256::new();
    h.update(b"kipoi-containers SIF UUID\0");
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    Uuid(b)
}

/// The `config` member without empty values (go-containerregistry's `omitempty`).
fn oci_config(raw: &serde_json::Map<String, serde_json::Value>) -> Vec<u8> {
    use serde_json::Value;
    let kept: serde_json::Map<String, Value> = raw
        .iter()
        .filter(|(_, v)| match v {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
            Value::Number(_) => true,
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    serde_json::to_vec(&Value::Object(kept)).unwrap_or_default()
}

fn check(cancel: Option<&AtomicBool>, image: &str) -> Result<(), SifError> {
    if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
        return Err(SifError::Cancelled {
            image: image.to_owned(),
        });
    }
    Ok(())
}

/// md5 of `file` from its start, in one sequential read.
fn md5_of(file: &mut File, path: &Path) -> Result<String, SifError> {
    file.seek(SeekFrom::Start(0))
        .map_err(SifError::io(path, "read back"))?;
    let (md5, _) = crate::transfer::md5_read(file).map_err(SifError::io(path, "read back"))?;
    Ok(md5)
}

/// Converts the `docker save` archive at `archive` into the SIF `out`.
pub fn convert_archive(
    archive: &Path,
    out: &Path,
    opts: &ConvertOptions,
) -> Result<ConvertReport, SifError> {
    let file = File::open(archive).map_err(SifError::io(archive, "open the image archive"))?;
    convert_file(file, archive, out, opts, None, None)
}

/// The pipeline on an open archive. `reference` is the image asked for (it picks the
/// image in a multi-image archive and is the default source reference); `cancel` stops
/// it between steps (the temporary SIF is removed).
fn convert_file(
    file: File,
    archive_path: &Path,
    out: &Path,
    opts: &ConvertOptions,
    reference: Option<&str>,
    cancel: Option<&AtomicBool>,
) -> Result<ConvertReport, SifError> {
    let started = Instant::now();
    let want = opts.source_image.as_deref().or(reference);
    let archive = ImageArchive::from_file(file, archive_path, want)?;
    let config = archive.config.clone();
    let source_digest = opts
        .source_digest
        .clone()
        .unwrap_or_else(|| archive.config_digest.clone());
    let source_image = want
        .map(str::to_owned)
        .or_else(|| archive.repo_tags.first().cloned())
        .unwrap_or_else(|| source_digest.clone());
    let label = want.unwrap_or(&source_image).to_owned();
    check(cancel, &label)?;
    let time = build_time(opts, config.created.as_deref());
    let workdir = match &opts.workdir {
        Some(d) => d.clone(),
        None => match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        },
    };
    let layer_count = archive.layer_names().len();
    let (sources, layers) = archive.into_layers(&workdir)?;

    let mut tree = Tree::new(time);
    {
        let mut flattener = Flattener::new(&mut tree, time);
        for (i, layer) in layers.iter().enumerate() {
            check(cancel, &label)?;
            let file =
                sources
                    .files
                    .get(layer.source as usize)
                    .ok_or_else(|| SifError::InvalidLayer {
                        layer: layer.name.clone(),
                        problem: "its data source is missing".into(),
                    })?;
            let stats = flattener.apply(i as u32 + 1, file, layer)?;
            log::debug!("layer {} `{}`: {stats:?}", i + 1, layer.name);
        }
    }

    let arch = Arch::from_go_name(&config.architecture);
    let mut labels: BTreeMap<String, String> = config.run.labels.clone().unwrap_or_default();
    let mut set = |k: &str, v: String| {
        labels.insert(k.to_owned(), v);
    };
    set("org.label-schema.schema-version", "1.0".into());
    set(
        "org.label-schema.build-date",
        timefmt::label_schema_date(time),
    );
    set("org.opencontainers.image.created", timefmt::rfc3339(time));
    set(
        "org.label-schema.usage.singularity.deffile.bootstrap",
        "docker-daemon".into(),
    );
    set(
        "org.label-schema.usage.singularity.deffile.from",
        source_image.clone(),
    );
    set("org.opencontainers.image.base.name", source_image.clone());
    set(
        "org.opencontainers.image.base.digest",
        source_digest.clone(),
    );
    set(
        "org.opencontainers.image.architecture",
        config.architecture.clone(),
    );
    set("org.label-schema.build-arch", config.architecture.clone());
    set(SOURCE_IMAGE_LABEL, source_image.clone());
    set(SOURCE_DIGEST_LABEL, source_digest.clone());
    set(
        CONVERTER_LABEL,
        format!("kipoi_containers {}", env!("CARGO_PKG_VERSION")),
    );
    if let Some(g) = &opts.model_group {
        set(MODEL_GROUP_LABEL, g.clone());
    }
    if let Some(c) = &opts.zoo_commit {
        set(ZOO_COMMIT_LABEL, c.clone());
    }
    let deffile = format!("bootstrap: docker-daemon\nfrom: {source_image}\n\n");
    let meta = Metadata::new(&config.run, labels, deffile.clone());
    apptainer::add_to_tree(&mut tree, &meta, time);

    let uuid = derive_uuid(&[
        &source_digest,
        &source_image,
        opts.model_group.as_deref().unwrap_or(""),
        opts.zoo_commit.as_deref().unwrap_or(""),
        &time.to_string(),
    ]);
    let builder = SifBuilder::new(uuid, time, arch)
        .deffile(deffile)
        .json("inspect-metadata.json", meta.inspect_json())
        .json("oci-config.json", oci_config(&config.raw_run_config));
    let partition_offset = builder.partition_offset();

    check(cancel, &label)?;
    let mut sif = AtomicFile::create(out, 0o755).map_err(|source| SifError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    sif.set_mode(0o755).map_err(|source| SifError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    let squash_opts = SquashfsOptions {
        mkfs_time: time,
        level: opts.level.unwrap_or(squashfs::DEFAULT_LEVEL),
        threads: opts
            .threads
            .unwrap_or_else(|| SquashfsOptions::default().threads),
    };
    let file = sif.file();
    file.seek(SeekFrom::Start(partition_offset))
        .map_err(SifError::io(out, "seek in"))?;
    let summary =
        squashfs::write_squashfs(&tree, &sources.files, file, out, archive_path, &squash_opts)?;
    builder
        .write_metadata(file, summary.len)
        .map_err(SifError::io(out, "write the SIF header of"))?;
    let md5 = md5_of(file, out)?;
    let size = partition_offset + summary.len;
    check(cancel, &label)?;
    sif.commit().map_err(|source| SifError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    let report = ConvertReport {
        path: out.to_path_buf(),
        md5,
        size,
        partition_offset,
        partition_size: summary.len,
        uuid: uuid.to_string(),
        source_image,
        source_digest,
        time,
        layers: layer_count,
        squashfs: summary,
        seconds: started.elapsed().as_secs_f64(),
    };
    log::info!(
        "converted `{}` to `{}`: {} bytes, md5 {}, {} inodes, {:.1} s",
        report.source_image,
        out.display(),
        report.size,
        report.md5,
        report.squashfs.inodes,
        report.seconds
    );
    Ok(report)
}

/// Sets the flag when dropped: a cancelled `convert_image` stops its blocking task.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Exports `image` from the Engine (spooled to an unnamed temporary file), then
/// converts it on a blocking thread. Dropping the future stops the conversion and
/// leaves no temporary file behind.
pub async fn convert_image(
    engine: &Engine,
    image: &str,
    out: &Path,
    mut opts: ConvertOptions,
) -> Result<ConvertReport, SifError> {
    use futures_util::StreamExt as _;
    use tokio::io::AsyncWriteExt as _;
    // What is not given comes from the image itself, so the SIF is a function of the image
    // whoever converts it (a sync, `update_all_singularity`, a user): its model group and zoo
    // commit labels, and the registry digest it was pushed or pulled as.
    let export_err = |source| SifError::Export {
        image: image.to_owned(),
        source,
    };
    let labels = engine.image_labels(image).await.map_err(export_err)?;
    if opts.model_group.is_none() {
        opts.model_group = labels.get(crate::docker::MODEL_GROUP_LABEL).cloned();
    }
    if opts.zoo_commit.is_none() {
        opts.zoo_commit = labels.get(crate::docker::ZOO_COMMIT_LABEL).cloned();
    }
    if opts.source_digest.is_none() {
        opts.source_digest = engine
            .image_repo_digests(image)
            .await
            .map_err(export_err)?
            .into_iter()
            .next();
    }
    let workdir = match &opts.workdir {
        Some(d) => d.clone(),
        None => match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        },
    };
    engine
        .image_id(image)
        .await
        .map_err(|source| SifError::Export {
            image: image.to_owned(),
            source,
        })?;
    let spool = tempfile::tempfile_in(&workdir)
        .map_err(SifError::io(&workdir, "create a temporary file in"))?;
    let mut writer = tokio::io::BufWriter::with_capacity(1 << 20, tokio::fs::File::from_std(spool));
    let mut stream = std::pin::pin!(engine.export(image));
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|source| SifError::Export {
            image: image.to_owned(),
            source,
        })?;
        writer
            .write_all(&chunk)
            .await
            .map_err(SifError::io(&workdir, "spool the image export into"))?;
        bytes += chunk.len() as u64;
    }
    writer
        .flush()
        .await
        .map_err(SifError::io(&workdir, "spool the image export into"))?;
    let spool = writer.into_inner().into_std().await;
    log::debug!("exported `{image}`: {bytes} bytes spooled");

    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(Arc::clone(&cancel));
    let image_owned = image.to_owned();
    let out = out.to_path_buf();
    let task = tokio::task::spawn_blocking(move || {
        let name = PathBuf::from(format!("docker-daemon:{image_owned}"));
        convert_file(spool, &name, &out, &opts, Some(&image_owned), Some(&cancel))
    });
    task.await.map_err(|source| SifError::Task {
        image: image.to_owned(),
        source,
    })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sif::archive::tests::{config_json, gzip, legacy_archive, oci_archive, zstd};
    use crate::sif::have_tool;
    use crate::sif::layers::tests::LayerTar;
    use crate::sif::read::{verify, SifInspection};
    use std::process::Command;

    fn layers() -> Vec<Vec<u8>> {
        let l1 = LayerTar::new()
            .dir("bin", 0o755)
            .file_owned("bin/tool", b"#!/bin/sh\necho tool \"$@\"\n", 0o4755, 0, 0)
            .dir("usr/lib", 0o755)
            .symlink("lib", "usr/lib")
            .file("etc/gone", b"bye")
            .file("etc/hosts", b"127.0.0.1 image")
            .device("dev/null", false, 1, 3)
            .finish();
        let l2 = LayerTar::new()
            .hardlink_mode("bin/tool2", "bin/tool", 0o4755)
            .file("lib/libx.so", b"ELF")
            .file("etc/.wh.gone", b"")
            .file_owned("home/u/data", &vec![7u8; 300_000], 0o640, 1000, 1000)
            .raw_file("../../escape", b"e")
            .symlink("abs", "/bin/tool")
            .finish();
        vec![l1, l2]
    }

    fn opts() -> ConvertOptions {
        ConvertOptions {
            source_image: Some("kipoi/test:1".into()),
            model_group: Some("Basset".into()),
            zoo_commit: Some("abc123".into()),
            threads: Some(2),
            ..ConvertOptions::default()
        }
    }

    fn md5_file(p: &Path) -> String {
        let mut f = File::open(p).unwrap();
        md5_of(&mut f, p).unwrap()
    }

    #[test]
    fn converts_deterministically_and_records_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_json("2024-01-02T03:04:05Z");
        let archive = dir.path().join("img.tar");
        std::fs::write(&archive, legacy_archive(&layers(), &config, "kipoi/test:1")).unwrap();
        let a = dir.path().join("a.sif");
        let b = dir.path().join("b.sif");
        let ra = convert_archive(&archive, &a, &opts()).unwrap();
        let rb = convert_archive(
            &archive,
            &b,
            &ConvertOptions {
                threads: Some(1),
                ..opts()
            },
        )
        .unwrap();
        assert_eq!(ra.md5, md5_file(&a));
        assert_eq!(ra.md5, rb.md5, "same image, same bytes");
        assert_eq!(
            ra.time, 1_704_164_645,
            "image `created` when SOURCE_DATE_EPOCH is unset"
        );
        assert_eq!(ra.size, std::fs::metadata(&a).unwrap().len());
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&a).unwrap().permissions().mode() & 0o777,
            0o755
        );

        // The same image as an OCI layout with compressed layers: same SIF.
        let l = layers();
        let oci = dir.path().join("oci.tar");
        std::fs::write(
            &oci,
            oci_archive(&[gzip(&l[0]), zstd(&l[1])], &config, "kipoi/test:1"),
        )
        .unwrap();
        let c = dir.path().join("c.sif");
        let rc = convert_archive(&oci, &c, &opts()).unwrap();
        assert_eq!(
            rc.md5, ra.md5,
            "layout and compression do not change the result"
        );

        // Another time or another zoo commit: other bytes.
        let d = dir.path().join("d.sif");
        let rd = convert_archive(
            &archive,
            &d,
            &ConvertOptions {
                source_date_epoch: Some(1_000),
                ..opts()
            },
        )
        .unwrap();
        assert_ne!(rd.md5, ra.md5);
        assert_eq!(rd.time, 1_000);
        let e = dir.path().join("e.sif");
        let re = convert_archive(
            &archive,
            &e,
            &ConvertOptions {
                zoo_commit: Some("def".into()),
                ..opts()
            },
        )
        .unwrap();
        assert_ne!(re.md5, ra.md5);
        assert_ne!(re.uuid, ra.uuid);

        let sif = verify(&d).unwrap();
        assert_eq!((sif.ctime(), sif.mtime()), (1_000, 1_000));
        assert!(sif.descriptors().iter().all(|x| x.ctime() == 1_000));
        let insp = SifInspection::open(&a).unwrap();
        assert_eq!(insp.sif.uuid().to_string(), ra.uuid);
        assert_eq!(insp.sif.primary_partition().offset(), ra.partition_offset);
        assert_eq!(
            insp.deffile,
            "bootstrap: docker-daemon\nfrom: kipoi/test:1\n\n"
        );
        let l = &insp.labels;
        assert_eq!(l["maintainer"], "kipoi", "the image's own labels are kept");
        assert_eq!(l["org.kipoi-containers.model-group"], "Basset");
        assert_eq!(l["org.kipoi-containers.zoo-commit"], "abc123");
        assert_eq!(l[SOURCE_IMAGE_LABEL], "kipoi/test:1");
        assert_eq!(l["org.opencontainers.image.base.name"], "kipoi/test:1");
        assert_eq!(l[SOURCE_DIGEST_LABEL], ra.source_digest);
        assert!(ra.source_digest.starts_with("sha256:"));
        assert_eq!(l["org.opencontainers.image.base.digest"], ra.source_digest);
        assert_eq!(
            insp.oci_config.unwrap(),
            serde_json::json!({"Env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"], "Cmd": ["sh"], "Labels": {"maintainer": "kipoi"}})
        );
    }

    #[test]
    fn cancelled_conversion_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("img.tar");
        let config = config_json("2024-01-02T03:04:05Z");
        std::fs::write(&archive, legacy_archive(&layers(), &config, "t:1")).unwrap();
        let cancel = AtomicBool::new(true);
        let out = dir.path().join("x.sif");
        let file = File::open(&archive).unwrap();
        let e = convert_file(file, &archive, &out, &opts(), None, Some(&cancel)).unwrap_err();
        assert!(matches!(e, SifError::Cancelled { .. }), "{e}");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["img.tar"]);
    }

    /// The written partition seen by the real `unsquashfs`: the flattening rules, the
    /// additions, hardlinks as one inode.
    #[test]
    fn unsquashfs_sees_the_flattened_image() {
        if !have_tool("unsquashfs") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("img.tar");
        let config = config_json("2024-01-02T03:04:05Z");
        std::fs::write(&archive, legacy_archive(&layers(), &config, "t:1")).unwrap();
        let out = dir.path().join("x.sif");
        let r = convert_archive(&archive, &out, &opts()).unwrap();
        let ls = Command::new("unsquashfs")
            .args(["-lln", "-d", "", "-o"])
            .arg(r.partition_offset.to_string())
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            ls.status.success(),
            "{}",
            String::from_utf8_lossy(&ls.stderr)
        );
        let text = String::from_utf8_lossy(&ls.stdout);
        let lines: BTreeMap<String, String> = text
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let path_at = f.iter().position(|x| x.starts_with('/'))?;
                Some((f[path_at].to_owned(), format!("{} {}", f[0], f[1])))
            })
            .collect();
        let get = |p: &str| {
            lines
                .get(p)
                .cloned()
                .unwrap_or_else(|| panic!("{p} missing:\n{text}"))
        };
        assert_eq!(get("/bin/tool"), "-rwsr-xr-x 0/0");
        assert_eq!(get("/bin/tool2"), "-rwsr-xr-x 0/0");
        assert_eq!(get("/usr/lib/libx.so"), "-rw-r--r-- 0/0");
        assert_eq!(get("/home/u/data"), "-rw-r----- 1000/1000");
        assert_eq!(get("/escape"), "-rw-r--r-- 0/0");
        assert!(get("/dev/null").starts_with("crw-rw----"));
        assert!(!lines.contains_key("/etc/gone"), "whiteout applied");
        assert!(
            !lines.keys().any(|k| k.contains(".wh.")),
            "no whiteout file left"
        );
        assert_eq!(get("/etc/hosts"), "-rw-r--r-- 0/0");
        for p in [
            "/.singularity.d/runscript",
            "/.singularity.d/env/10-docker2singularity.sh",
            "/.singularity.d/actions/run",
            "/.singularity.d/labels.json",
            "/.singularity.d/Singularity",
        ] {
            get(p);
        }
        assert!(text.contains("/singularity -> .singularity.d/runscript"));
        assert!(text.contains("/abs -> /bin/tool"), "absolute targets kept");

        // Extracted: hardlinks share an inode; /etc/hosts is empty.
        let x = dir.path().join("x");
        let ex = Command::new("unsquashfs")
            .arg("-d")
            .arg(&x)
            .arg("-o")
            .arg(r.partition_offset.to_string())
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            ex.status.success(),
            "{}",
            String::from_utf8_lossy(&ex.stderr)
        );
        use std::os::unix::fs::MetadataExt as _;
        let ino = |p: &str| std::fs::metadata(x.join(p)).unwrap().ino();
        assert_eq!(ino("bin/tool"), ino("bin/tool2"));
        assert_eq!(std::fs::metadata(x.join("etc/hosts")).unwrap().len(), 0);
        assert_eq!(
            std::fs::read(x.join("home/u/data")).unwrap(),
            vec![7u8; 300_000]
        );
    }
}

/// Real Docker Engine checks: an image built `FROM scratch` with hardlinks, a deleted
/// file and a setuid file, converted from the Engine and compared with `docker export`
/// of a container of it; then the SIF is mounted with squashfuse and booted with bwrap.
#[cfg(test)]
mod engine_tests {
    use super::*;
    use crate::sif::have_tool;
    use crate::sif::layers::tests::LayerTar;
    use crate::sif::verify;
    use std::collections::BTreeSet;
    use std::process::Command;

    /// Whether the Engine answers; under `CI` its absence is a failure.
    #[allow(clippy::print_stderr)]
    fn engine() -> Option<Engine> {
        if !have_tool("docker") {
            return None;
        }
        match crate::runtime::runtime().block_on(Engine::connect(None)) {
            Ok(e) => Some(e),
            Err(e) => {
                assert!(
                    !crate::sif::strict_requirements(),
                    "the Docker Engine is needed under CI: {e}"
                );
                eprintln!("skipped: no Docker Engine ({e})");
                None
            }
        }
    }

    /// A host binary and the shared libraries `ldd` names, as layer entries.
    fn with_host_binary(mut tar: LayerTar, host: &str, at: &str) -> LayerTar {
        tar = tar.file_owned(at, &std::fs::read(host).unwrap(), 0o755, 0, 0);
        let ldd = Command::new("ldd").arg(host).output().unwrap();
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            let path = line.split_whitespace().find(|w| w.starts_with('/'));
            if let Some(p) = path {
                let real = std::fs::canonicalize(p).unwrap();
                tar = tar.file_owned(
                    p.trim_start_matches('/'),
                    &std::fs::read(real).unwrap(),
                    0o755,
                    0,
                    0,
                );
            }
        }
        tar
    }

    fn ls_mode(kind: char, mode: u32) -> String {
        let mut s = String::from(kind);
        let bit = |m: u32, c: char| if mode & m != 0 { c } else { '-' };
        let special =
            |x: u32, sp: u32, lower: char, upper: char| match (mode & x != 0, mode & sp != 0) {
                (true, true) => lower,
                (false, true) => upper,
                (true, false) => 'x',
                (false, false) => '-',
            };
        s.push(bit(0o400, 'r'));
        s.push(bit(0o200, 'w'));
        s.push(special(0o100, 0o4000, 's', 'S'));
        s.push(bit(0o040, 'r'));
        s.push(bit(0o020, 'w'));
        s.push(special(0o010, 0o2000, 's', 'S'));
        s.push(bit(0o004, 'r'));
        s.push(bit(0o002, 'w'));
        s.push(special(0o001, 0o1000, 't', 'T'));
        s
    }

    /// path → "mode uid/gid [-> target]" of a `docker export` tar.
    fn export_listing(tar_bytes: &[u8]) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut ar = tar::Archive::new(tar_bytes);
        let mut links: BTreeMap<String, String> = BTreeMap::new();
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            let path = String::from_utf8_lossy(&e.path_bytes())
                .trim_end_matches('/')
                .to_string();
            let kind = match h.entry_type() {
                tar::EntryType::Directory => 'd',
                tar::EntryType::Symlink => 'l',
                tar::EntryType::Char => 'c',
                tar::EntryType::Block => 'b',
                tar::EntryType::Fifo => 'p',
                tar::EntryType::Link => {
                    let target = String::from_utf8_lossy(&e.link_name_bytes().unwrap()).to_string();
                    links.insert(path.clone(), target);
                    continue;
                }
                _ => '-',
            };
            let mut line = format!(
                "{} {}/{}",
                ls_mode(kind, h.mode().unwrap()),
                h.uid().unwrap(),
                h.gid().unwrap()
            );
            if kind == 'l' {
                line.push_str(&format!(
                    " -> {}",
                    String::from_utf8_lossy(&e.link_name_bytes().unwrap())
                ));
            }
            out.insert(path, line);
        }
        for (path, target) in links {
            let line = out.get(&target).cloned().unwrap_or_default();
            out.insert(path, line);
        }
        out
    }

    /// path → "mode uid/gid [-> target]" of `unsquashfs -lln`.
    fn squashfs_listing(sif: &Path, offset: u64) -> BTreeMap<String, String> {
        let ls = Command::new("unsquashfs")
            .args(["-lln", "-d", "", "-o"])
            .arg(offset.to_string())
            .arg(sif)
            .output()
            .unwrap();
        assert!(
            ls.status.success(),
            "{}",
            String::from_utf8_lossy(&ls.stderr)
        );
        String::from_utf8_lossy(&ls.stdout)
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let at = f.iter().position(|x| x.starts_with('/'))?;
                let mut line = format!("{} {}", f[0], f[1]);
                if f.get(at + 1) == Some(&"->") {
                    line.push_str(&format!(" -> {}", f[at + 2..].join(" ")));
                }
                Some((f[at].trim_start_matches('/').to_string(), line))
            })
            .filter(|(p, _)| !p.is_empty())
            .collect()
    }

    struct Cleanup(Vec<Vec<String>>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            for cmd in self.0.iter().rev() {
                let _ = Command::new(&cmd[0]).args(&cmd[1..]).output();
            }
        }
    }

    #[test]
    fn engine_image_converts_like_docker_export_and_boots() {
        let Some(engine) = engine() else { return };
        for tool in ["unsquashfs", "squashfuse", "bwrap", "fusermount"] {
            if !have_tool(tool) {
                return;
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let mut base = LayerTar::new()
            .dir("bin", 0o755)
            .dir("etc", 0o755)
            .file("etc/gone", b"deleted in a later layer")
            .file_owned("usr/bin/tool", b"#!/bin/sh\necho tool\n", 0o4755, 0, 0)
            .hardlink_mode("usr/bin/tool-link", "usr/bin/tool", 0o4755)
            .hardlink_mode("usr/bin/tool-chain", "usr/bin/tool-link", 0o4755)
            .file_owned("home/u/f", b"u", 0o2640, 1000, 1000)
            .dir("srv", 0o1777)
            .symlink("abs", "/usr/bin/tool");
        base = with_host_binary(base, "/bin/dash", "bin/sh");
        base = with_host_binary(base, "/bin/rm", "bin/rm");
        let extra = LayerTar::new()
            .file("opt/data/a", &vec![1u8; 200_000])
            .hardlink("opt/data/b", "opt/data/a")
            .finish();
        std::fs::write(dir.path().join("base.tar"), base.finish()).unwrap();
        std::fs::write(dir.path().join("extra.tar"), extra).unwrap();
        let dockerfile = "FROM scratch\nADD base.tar /\nRUN [\"/bin/rm\", \"/etc/gone\"]\nADD extra.tar /\nENV GREETING=\"hello from sif\"\nCMD [\"/bin/sh\", \"-c\", \"echo $GREETING\"]\n";
        let image = format!("kipoi-containers-test/sif-engine:{}", std::process::id());
        let rt = crate::runtime::runtime();
        let mut cleanup = Cleanup(vec![vec![
            "docker".into(),
            "rmi".into(),
            "-f".into(),
            image.clone(),
        ]]);
        rt.block_on(engine.build(
            &image,
            dockerfile,
            Some(dir.path()),
            &std::collections::HashMap::new(),
            false,
            &mut |_| {},
        ))
        .unwrap();

        let sif = dir.path().join("img.sif");
        let opts = ConvertOptions {
            model_group: Some("Test/group".into()),
            ..ConvertOptions::default()
        };
        let report = rt
            .block_on(convert_image(&engine, &image, &sif, opts))
            .unwrap();
        verify(&sif).unwrap();
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

        // docker export of a container of the image.
        let id = String::from_utf8(
            Command::new("docker")
                .args(["create", &image])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let id = id.trim().to_string();
        cleanup
            .0
            .push(vec!["docker".into(), "rm".into(), "-f".into(), id.clone()]);
        let exported = Command::new("docker")
            .args(["export", &id])
            .output()
            .unwrap();
        assert!(exported.status.success());
        let docker = export_listing(&exported.stdout);
        let ours = squashfs_listing(&sif, report.partition_offset);

        let docker_artefacts = |p: &str| {
            matches!(
                p,
                ".dockerenv"
                    | "etc/hosts"
                    | "etc/hostname"
                    | "etc/resolv.conf"
                    | "etc/mtab"
                    | "dev"
                    | "proc"
                    | "sys"
                    | "etc"
            ) || p.starts_with("dev/")
        };
        let apptainer_added = |p: &str| {
            p.starts_with(".singularity.d")
                || matches!(
                    p,
                    ".exec"
                        | ".run"
                        | ".shell"
                        | ".test"
                        | "singularity"
                        | "environment"
                        | "dev"
                        | "proc"
                        | "sys"
                        | "tmp"
                        | "home"
                        | "root"
                        | "var"
                        | "var/tmp"
                        | "etc"
                        | "etc/hosts"
                        | "etc/resolv.conf"
                )
        };
        for (path, line) in &docker {
            if docker_artefacts(path) {
                continue;
            }
            assert_eq!(
                ours.get(path),
                Some(line),
                "`{path}` differs (docker: {line})"
            );
        }
        let extra_in_ours: BTreeSet<&String> = ours
            .keys()
            .filter(|p| !docker.contains_key(*p) && !apptainer_added(p))
            .collect();
        assert!(
            extra_in_ours.is_empty(),
            "only in the SIF: {extra_in_ours:?}"
        );
        assert!(!docker.contains_key("etc/gone") && !ours.contains_key("etc/gone"));
        assert!(
            ours["usr/bin/tool"].starts_with("-rwsr-xr-x 0/0"),
            "{}",
            ours["usr/bin/tool"]
        );

        // Mounted as apptainer would: hardlinks are one inode, and the runscript runs.
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let mount = Command::new("squashfuse")
            .arg("-o")
            .arg(format!("offset={}", report.partition_offset))
            .arg(&sif)
            .arg(&mnt)
            .output()
            .unwrap();
        assert!(
            mount.status.success(),
            "{}",
            String::from_utf8_lossy(&mount.stderr)
        );
        cleanup.0.push(vec![
            "fusermount".into(),
            "-u".into(),
            mnt.display().to_string(),
        ]);
        use std::os::unix::fs::MetadataExt as _;
        let meta = |p: &str| std::fs::symlink_metadata(mnt.join(p)).unwrap();
        // (This squashfuse numbers inodes per path, so the link count is what shows the
        // shared inode here; `unsquashfs_sees_the_flattened_image` checks the inode itself.)
        for p in ["usr/bin/tool", "usr/bin/tool-link", "usr/bin/tool-chain"] {
            assert_eq!(meta(p).nlink(), 3, "{p}");
        }
        assert_eq!(meta("opt/data/b").nlink(), 2);
        let run = Command::new("bwrap")
            .arg("--ro-bind")
            .arg(&mnt)
            .args([
                "/",
                "--proc",
                "/proc",
                "--dev",
                "/dev",
                "--tmpfs",
                "/tmp",
                "--clearenv",
                "--setenv",
                "PATH",
                "/bin",
                "/.singularity.d/actions/run",
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&run.stdout).trim(),
            "hello from sif",
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let exec = Command::new("bwrap")
            .arg("--ro-bind")
            .arg(&mnt)
            .args([
                "/",
                "--proc",
                "/proc",
                "--dev",
                "/dev",
                "--tmpfs",
                "/tmp",
                "--clearenv",
                "/.singularity.d/actions/exec",
                "/bin/sh",
                "-c",
                "echo \"$LD_LIBRARY_PATH|$GREETING\"",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&exec.stdout);
        assert_eq!(
            text.trim(),
            "/.singularity.d/libs|hello from sif",
            "env scripts sourced"
        );
        let labels = std::fs::read_to_string(mnt.join(".singularity.d/labels.json")).unwrap();
        assert!(
            labels.contains("\"org.kipoi-containers.model-group\": \"Test/group\""),
            "{labels}"
        );
        drop(cleanup);
        assert!(
            std::fs::read_dir(&mnt).unwrap().next().is_none(),
            "unmounted"
        );
    }
}
