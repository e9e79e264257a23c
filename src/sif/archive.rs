//! Reads a `docker save` archive (the Engine's image export) without unpacking it:
//!
//! - the legacy layout of Docker ≤ 24: `manifest.json` (`Config: "<hex>.json"`,
//!   `Layers: ["<v1id>/layer.tar", …]`, layer tars possibly symlinks to each other);
//! - the OCI layout of Docker ≥ 25: `index.json` → (nested index →) manifest →
//!   `blobs/sha256/<hex>`, and a Docker `manifest.json` naming the same blobs.
//!
//! `manifest.json` is preferred when present (spec §3.1). The outer tar is indexed once
//! (member name → offset, size); layers are detected by their first bytes: gzip and zstd
//! layers are decompressed once into an unnamed temporary file, plain tars are used in
//! place. Nothing is extracted.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::layers::{LayerRef, Window};
use super::SifError;

/// JSON members read into memory are at most this long.
const MAX_JSON: u64 = 64 << 20;
/// Nested image indexes followed at most this deep.
const MAX_INDEX_DEPTH: usize = 4;

/// The runtime part of an image config (`config` member).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct RunConfig {
    #[serde(rename = "Env", default)]
    pub env: Option<Vec<String>>,
    #[serde(rename = "Entrypoint", default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "Labels", default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "WorkingDir", default)]
    pub working_dir: Option<String>,
    #[serde(rename = "User", default)]
    pub user: Option<String>,
}

/// The fields of an image config the conversion uses.
#[derive(Clone, Debug, Default)]
pub struct ImageConfig {
    /// Go architecture name (`amd64`).
    pub architecture: String,
    pub os: String,
    /// RFC 3339 creation time, when the config has one.
    pub created: Option<String>,
    /// The `config` member as written (for `oci-config.json`).
    pub raw_run_config: serde_json::Map<String, serde_json::Value>,
    pub run: RunConfig,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    config: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct ManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    platform: Option<Platform>,
    #[serde(default)]
    annotations: Option<HashMap<String, String>>,
}

#[derive(Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

#[derive(Deserialize)]
struct OciIndex {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct OciManifest {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Clone, Copy, Debug)]
struct Member {
    offset: u64,
    size: u64,
}

/// How a layer blob is compressed (by its magic bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    Xz,
    Bzip2,
}

impl Compression {
    #[must_use]
    pub fn detect(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Self::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Self::Zstd
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z']) {
            Self::Xz
        } else if head.starts_with(b"BZh") {
            Self::Bzip2
        } else {
            Self::None
        }
    }
}

/// The files layer data is read from: source 0 is the archive, the others are
/// decompressed layers (unnamed temporary files, gone when dropped).
#[derive(Debug)]
pub struct Sources {
    pub files: Vec<File>,
}

/// An indexed `docker save` archive and the image chosen in it.
#[derive(Debug)]
pub struct ImageArchive {
    path: PathBuf,
    file: File,
    members: HashMap<String, Member>,
    symlinks: HashMap<String, String>,
    /// The image config.
    pub config: ImageConfig,
    /// `sha256:<hex>` of the config bytes: the image id.
    pub config_digest: String,
    /// The tags the archive gives the image (legacy layout), or its reference names.
    pub repo_tags: Vec<String>,
    layers: Vec<String>,
}

fn clean_member(name: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

fn blob_path(digest: &str) -> String {
    match digest.split_once(':') {
        Some((alg, hex)) => format!("blobs/{alg}/{hex}"),
        None => format!("blobs/sha256/{digest}"),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let d = sha2::Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_index(media_type: &str) -> bool {
    media_type.ends_with("image.index.v1+json") || media_type.ends_with("manifest.list.v2+json")
}

/// The Go name of the architecture this process runs on.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

impl ImageArchive {
    /// Opens and indexes the archive at `path`; `want` picks the image by tag or
    /// reference when the archive holds several.
    pub fn open(path: &Path, want: Option<&str>) -> Result<Self, SifError> {
        let file = File::open(path).map_err(SifError::io(path, "open the image archive"))?;
        Self::from_file(file, path, want)
    }

    /// Indexes the archive in `file` (`path` names it in errors).
    pub fn from_file(file: File, path: &Path, want: Option<&str>) -> Result<Self, SifError> {
        let invalid = |problem: String| SifError::InvalidArchive {
            archive: path.to_path_buf(),
            problem,
        };
        let len = file
            .metadata()
            .map_err(SifError::io(path, "stat the image archive"))?
            .len();
        let mut members = HashMap::new();
        let mut symlinks = HashMap::new();
        {
            let window = Window {
                file: &file,
                base: 0,
                len,
                pos: 0,
            };
            let mut tar = tar::Archive::new(window);
            let entries = tar
                .entries_with_seek()
                .map_err(|e| invalid(format!("not a tar archive ({e})")))?;
            for entry in entries {
                let entry = entry.map_err(|e| invalid(format!("unreadable tar entry ({e})")))?;
                let name = clean_member(&String::from_utf8_lossy(&entry.path_bytes()));
                match entry.header().entry_type() {
                    t if t.is_file() => {
                        members.insert(
                            name,
                            Member {
                                offset: entry.raw_file_position(),
                                size: entry.size(),
                            },
                        );
                    }
                    tar::EntryType::Symlink | tar::EntryType::Link => {
                        if let Some(target) = entry.link_name_bytes() {
                            let target = String::from_utf8_lossy(&target).into_owned();
                            let resolved = if entry.header().entry_type() == tar::EntryType::Symlink
                            {
                                let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
                                clean_member(&format!("{dir}/{target}"))
                            } else {
                                clean_member(&target)
                            };
                            symlinks.insert(name, resolved);
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut archive = Self {
            path: path.to_path_buf(),
            file,
            members,
            symlinks,
            config: ImageConfig::default(),
            config_digest: String::new(),
            repo_tags: Vec::new(),
            layers: Vec::new(),
        };
        let (config_member, layers, tags) = if archive.member("manifest.json").is_some() {
            archive.pick_from_docker_manifest(want)?
        } else if archive.member("index.json").is_some() {
            archive.pick_from_oci_index(want)?
        } else {
            return Err(invalid(
                "neither `manifest.json` nor `index.json` found: not a `docker save` export".into(),
            ));
        };
        let config_bytes = archive.read_json_member(&config_member)?;
        let raw: RawConfig =
            serde_json::from_slice(&config_bytes).map_err(|source| SifError::ArchiveJson {
                archive: path.to_path_buf(),
                member: config_member.clone(),
                source,
            })?;
        let raw_run_config = raw.config.unwrap_or_default();
        let run: RunConfig = serde_json::from_value(serde_json::Value::Object(
            raw_run_config.clone(),
        ))
        .map_err(|source| SifError::ArchiveJson {
            archive: path.to_path_buf(),
            member: format!("{config_member}` member `config"),
            source,
        })?;
        archive.config = ImageConfig {
            architecture: raw.architecture,
            os: raw.os,
            created: raw.created,
            raw_run_config,
            run,
        };
        archive.config_digest = format!("sha256:{}", sha256_hex(&config_bytes));
        archive.layers = layers;
        archive.repo_tags = tags;
        Ok(archive)
    }

    /// The archive's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The member names of the layers, bottom first.
    #[must_use]
    pub fn layer_names(&self) -> &[String] {
        &self.layers
    }

    fn member(&self, name: &str) -> Option<Member> {
        let mut name = clean_member(name);
        for _ in 0..8 {
            if let Some(m) = self.members.get(&name) {
                return Some(*m);
            }
            name = self.symlinks.get(&name)?.clone();
        }
        None
    }

    fn read_json_member(&self, name: &str) -> Result<Vec<u8>, SifError> {
        let m = self.member(name).ok_or_else(|| SifError::InvalidArchive {
            archive: self.path.clone(),
            problem: format!("member `{name}` is missing"),
        })?;
        if m.size > MAX_JSON {
            return Err(SifError::InvalidArchive {
                archive: self.path.clone(),
                problem: format!("member `{name}` is {} bytes, too large for JSON", m.size),
            });
        }
        let mut buf = vec![0u8; m.size as usize];
        self.file
            .read_exact_at(&mut buf, m.offset)
            .map_err(SifError::io(&self.path, "read the image archive"))?;
        Ok(buf)
    }

    fn parse_json<T: for<'de> Deserialize<'de>>(&self, name: &str) -> Result<T, SifError> {
        let bytes = self.read_json_member(name)?;
        serde_json::from_slice(&bytes).map_err(|source| SifError::ArchiveJson {
            archive: self.path.clone(),
            member: name.to_owned(),
            source,
        })
    }

    fn pick_from_docker_manifest(
        &self,
        want: Option<&str>,
    ) -> Result<(String, Vec<String>, Vec<String>), SifError> {
        let entries: Vec<ManifestEntry> = self.parse_json("manifest.json")?;
        let pick = match (entries.len(), want) {
            (0, _) => None,
            (1, _) => entries.first(),
            (_, Some(w)) => entries.iter().find(|e| {
                e.repo_tags
                    .as_ref()
                    .is_some_and(|t| t.iter().any(|t| t == w))
                    || e.config.contains(w.trim_start_matches("sha256:"))
            }),
            (_, None) => None,
        };
        let entry = pick.ok_or_else(|| SifError::InvalidArchive {
            archive: self.path.clone(),
            problem: format!(
                "`manifest.json` has {} images and none is `{}`",
                entries.len(),
                want.unwrap_or("(no reference given)")
            ),
        })?;
        Ok((
            entry.config.clone(),
            entry.layers.clone(),
            entry.repo_tags.clone().unwrap_or_default(),
        ))
    }

    fn pick_from_oci_index(
        &self,
        want: Option<&str>,
    ) -> Result<(String, Vec<String>, Vec<String>), SifError> {
        let index: OciIndex = self.parse_json("index.json")?;
        let mut candidates = index.manifests;
        let mut name = "index.json".to_owned();
        let mut tags: Vec<String> = Vec::new();
        for _ in 0..MAX_INDEX_DEPTH {
            let chosen =
                self.choose(&candidates, want)
                    .ok_or_else(|| SifError::InvalidArchive {
                        archive: self.path.clone(),
                        problem: format!("`{name}` lists no image manifest present in the archive"),
                    })?;
            if tags.is_empty() {
                tags = chosen
                    .annotations
                    .as_ref()
                    .into_iter()
                    .flat_map(|a| {
                        a.get("io.containerd.image.name")
                            .or_else(|| a.get("org.opencontainers.image.ref.name"))
                            .cloned()
                    })
                    .collect();
            }
            name = blob_path(&chosen.digest);
            let manifest: OciManifest = self.parse_json(&name)?;
            if is_index(&chosen.media_type) || is_index(&manifest.media_type) {
                candidates = manifest.manifests.unwrap_or_default();
                continue;
            }
            let config = manifest.config.ok_or_else(|| SifError::InvalidArchive {
                archive: self.path.clone(),
                problem: format!("manifest `{name}` has no config"),
            })?;
            let layers = manifest
                .layers
                .iter()
                .map(|l| blob_path(&l.digest))
                .collect();
            return Ok((blob_path(&config.digest), layers, tags));
        }
        Err(SifError::InvalidArchive {
            archive: self.path.clone(),
            problem: format!("image indexes nested deeper than {MAX_INDEX_DEPTH}"),
        })
    }

    /// The manifest to follow: the one named `want`, else the one for this host's
    /// platform, else the first whose blob is present.
    fn choose<'d>(&self, list: &'d [Descriptor], want: Option<&str>) -> Option<&'d Descriptor> {
        let present: Vec<&Descriptor> = list
            .iter()
            .filter(|d| self.member(&blob_path(&d.digest)).is_some())
            .collect();
        if let Some(w) = want {
            let named = present.iter().find(|d| {
                d.annotations
                    .as_ref()
                    .is_some_and(|a| a.values().any(|v| v == w || w.ends_with(&format!(":{v}"))))
            });
            if let Some(d) = named {
                return Some(d);
            }
        }
        present
            .iter()
            .find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == host_arch())
            })
            .or_else(|| present.first())
            .copied()
    }

    /// Makes every layer readable as a plain tar: returns the data sources (the
    /// archive first) and the layers, bottom first. Compressed layers are decompressed
    /// into unnamed temporary files in `workdir`.
    pub fn into_layers(self, workdir: &Path) -> Result<(Sources, Vec<LayerRef>), SifError> {
        let mut refs = Vec::new();
        let mut extra: Vec<File> = Vec::new();
        for name in &self.layers {
            let m = self.member(name).ok_or_else(|| SifError::InvalidArchive {
                archive: self.path.clone(),
                problem: format!("layer `{name}` is missing"),
            })?;
            let mut head = [0u8; 6];
            let n = (m.size as usize).min(head.len());
            self.file
                .read_exact_at(&mut head[..n], m.offset)
                .map_err(SifError::io(&self.path, "read the image archive"))?;
            let compression = Compression::detect(&head[..n]);
            let window = Window {
                file: &self.file,
                base: m.offset,
                len: m.size,
                pos: 0,
            };
            let decoded: Option<Box<dyn Read + '_>> = match compression {
                Compression::None => None,
                Compression::Gzip => Some(Box::new(flate2::read::MultiGzDecoder::new(
                    BufReader::with_capacity(1 << 20, window),
                ))),
                Compression::Zstd => {
                    Some(Box::new(zstd::stream::read::Decoder::new(window).map_err(
                        |e| SifError::InvalidLayer {
                            layer: name.clone(),
                            problem: format!("zstd decoder failed to start ({e})"),
                        },
                    )?))
                }
                Compression::Xz | Compression::Bzip2 => {
                    return Err(SifError::InvalidLayer {
                        layer: name.clone(),
                        problem: format!(
                            "{compression:?} layers are not supported (gzip, zstd and plain are)"
                        ),
                    })
                }
            };
            match decoded {
                None => refs.push(LayerRef {
                    name: name.clone(),
                    source: 0,
                    offset: m.offset,
                    len: m.size,
                }),
                Some(mut reader) => {
                    let mut out = tempfile::tempfile_in(workdir)
                        .map_err(SifError::io(workdir, "create a temporary file in"))?;
                    let len = std::io::copy(&mut reader, &mut out).map_err(|e| {
                        SifError::InvalidLayer {
                            layer: name.clone(),
                            problem: format!("{compression:?} data does not decompress ({e})"),
                        }
                    })?;
                    log::debug!("layer `{name}`: {compression:?}, {len} bytes decompressed");
                    extra.push(out);
                    refs.push(LayerRef {
                        name: name.clone(),
                        source: u32::try_from(extra.len()).unwrap_or(u32::MAX),
                        offset: 0,
                        len,
                    });
                }
            }
        }
        let mut files = vec![self.file];
        files.extend(extra);
        Ok((Sources { files }, refs))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sif::layers::tests::LayerTar;
    use std::io::Write as _;

    pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    pub(crate) fn zstd(bytes: &[u8]) -> Vec<u8> {
        zstd::stream::encode_all(bytes, 1).unwrap()
    }

    fn add(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).unwrap();
    }

    pub(crate) fn config_json(created: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "created": created,
            "config": {
                "Env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"],
                "Cmd": ["sh"],
                "Labels": {"maintainer": "kipoi"}
            },
            "rootfs": {"type": "layers", "diff_ids": []}
        }))
        .unwrap()
    }

    /// A legacy `docker save` archive (Docker ≤ 24) of `layers` (as given: plain or
    /// compressed); the second layer's tar is a symlink to the first when `dup`.
    pub(crate) fn legacy_archive(layers: &[Vec<u8>], config: &[u8], tag: &str) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let cfg = format!("{}.json", sha256_hex(config));
        add(&mut b, &cfg, config);
        let mut names = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            let name = format!("{:064x}/layer.tar", i + 1);
            add(&mut b, &name, l);
            names.push(name);
        }
        let manifest = serde_json::json!([{"Config": cfg, "RepoTags": [tag], "Layers": names}]);
        add(
            &mut b,
            "manifest.json",
            &serde_json::to_vec(&manifest).unwrap(),
        );
        b.into_inner().unwrap()
    }

    /// An OCI-layout archive (Docker ≥ 25 / containerd store) with a nested index and
    /// no `manifest.json`.
    pub(crate) fn oci_archive(layers: &[Vec<u8>], config: &[u8], tag: &str) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        add(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        let blob = |b: &mut tar::Builder<Vec<u8>>, data: &[u8]| {
            let hex = sha256_hex(data);
            add(b, &format!("blobs/sha256/{hex}"), data);
            format!("sha256:{hex}")
        };
        let config_digest = blob(&mut b, config);
        let mut layer_descs = Vec::new();
        for l in layers {
            let d = blob(&mut b, l);
            layer_descs.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": d, "size": l.len()
            }));
        }
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": layer_descs
        }))
        .unwrap();
        let manifest_digest = blob(&mut b, &manifest);
        let nested = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                // A platform whose blob is absent (containerd stores keep only one).
                {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                 "digest": format!("sha256:{}", "0".repeat(64)), "size": 1,
                 "platform": {"architecture": "arm64", "os": "linux"}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                 "digest": manifest_digest, "size": manifest.len(),
                 "platform": {"architecture": "amd64", "os": "linux"}}
            ]
        }))
        .unwrap();
        let nested_digest = blob(&mut b, &nested);
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": nested_digest, "size": nested.len(),
                "annotations": {"io.containerd.image.name": tag, "org.opencontainers.image.ref.name": "1"}
            }]
        });
        add(&mut b, "index.json", &serde_json::to_vec(&index).unwrap());
        b.into_inner().unwrap()
    }

    fn open(bytes: &[u8]) -> (tempfile::TempDir, ImageArchive) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("image.tar");
        std::fs::write(&p, bytes).unwrap();
        let a = ImageArchive::open(&p, None).unwrap();
        (dir, a)
    }

    fn two_layers() -> (Vec<u8>, Vec<u8>) {
        (
            LayerTar::new()
                .file("a", b"first")
                .file("b", b"bee")
                .finish(),
            LayerTar::new()
                .file(".wh.b", b"")
                .file("c", b"sea")
                .finish(),
        )
    }

    fn flattened_files(archive: ImageArchive, dir: &Path) -> Vec<(String, Vec<u8>)> {
        use crate::sif::tree::{Data, Kind, Tree};
        let (sources, refs) = archive.into_layers(dir).unwrap();
        let mut tree = Tree::new(0);
        let mut f = crate::sif::layers::Flattener::new(&mut tree, 0);
        for (i, r) in refs.iter().enumerate() {
            f.apply(i as u32 + 1, &sources.files[r.source as usize], r)
                .unwrap();
        }
        let mut out = Vec::new();
        for (path, node) in tree.walk() {
            if let Kind::File {
                size,
                data: Data::Source { source, offset },
            } = &tree.node_inode(node).kind
            {
                let mut buf = vec![0u8; *size as usize];
                sources.files[*source as usize]
                    .read_exact_at(&mut buf, *offset)
                    .unwrap();
                out.push((path, buf));
            }
        }
        out
    }

    #[test]
    fn legacy_and_oci_layouts_with_every_compression_give_the_same_tree() {
        let (l1, l2) = two_layers();
        let config = config_json("2024-01-02T03:04:05Z");
        let expected = vec![
            ("a".to_string(), b"first".to_vec()),
            ("c".to_string(), b"sea".to_vec()),
        ];
        let variants: Vec<(&str, Vec<u8>)> = vec![
            (
                "legacy plain",
                legacy_archive(&[l1.clone(), l2.clone()], &config, "t:1"),
            ),
            (
                "legacy gzip+zstd",
                legacy_archive(&[gzip(&l1), zstd(&l2)], &config, "t:1"),
            ),
            (
                "oci gzip",
                oci_archive(&[gzip(&l1), gzip(&l2)], &config, "t:1"),
            ),
            (
                "oci zstd+plain",
                oci_archive(&[zstd(&l1), l2.clone()], &config, "t:1"),
            ),
        ];
        for (name, bytes) in variants {
            let (dir, archive) = open(&bytes);
            assert_eq!(archive.config.architecture, "amd64", "{name}");
            assert_eq!(
                archive.config_digest,
                format!("sha256:{}", sha256_hex(&config)),
                "{name}"
            );
            assert_eq!(archive.config.run.cmd, Some(vec!["sh".to_string()]));
            assert_eq!(archive.repo_tags, ["t:1"], "{name}");
            assert_eq!(archive.layer_names().len(), 2);
            assert_eq!(flattened_files(archive, dir.path()), expected, "{name}");
        }
    }

    #[test]
    fn legacy_layer_symlinks_are_followed() {
        let (l1, _) = two_layers();
        let config = config_json("2024-01-02T03:04:05Z");
        let mut b = tar::Builder::new(Vec::new());
        add(&mut b, "c.json", &config);
        add(&mut b, "aaa/layer.tar", &l1);
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "bbb/layer.tar", "../aaa/layer.tar")
            .unwrap();
        let manifest = serde_json::json!([{"Config": "c.json", "RepoTags": null,
            "Layers": ["aaa/layer.tar", "bbb/layer.tar"]}]);
        add(
            &mut b,
            "manifest.json",
            &serde_json::to_vec(&manifest).unwrap(),
        );
        let (dir, archive) = open(&b.into_inner().unwrap());
        let files = flattened_files(archive, dir.path());
        assert_eq!(files.len(), 2);
    }

    #[test]
    fn broken_archives_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "empty",
                Vec::new(),
                "neither `manifest.json` nor `index.json`",
            ),
            (
                "bad manifest",
                {
                    let mut b = tar::Builder::new(Vec::new());
                    add(&mut b, "manifest.json", b"{not json");
                    b.into_inner().unwrap()
                },
                "`manifest.json` is not valid JSON",
            ),
            (
                "missing config",
                {
                    let mut b = tar::Builder::new(Vec::new());
                    let m = br#"[{"Config":"nope.json","Layers":[]}]"#;
                    add(&mut b, "manifest.json", m);
                    b.into_inner().unwrap()
                },
                "member `nope.json` is missing",
            ),
        ];
        for (name, bytes, expected) in cases {
            let p = dir.path().join(format!("{name}.tar"));
            std::fs::write(&p, &bytes).unwrap();
            let e = ImageArchive::open(&p, None).unwrap_err();
            let text = e.to_string();
            assert!(text.contains(expected), "{name}: {text}");
            assert!(text.contains(&p.display().to_string()), "{name}: {text}");
        }
        // xz layers are refused by name.
        let config = config_json("2024-01-02T03:04:05Z");
        let xz = [vec![0xfd, b'7', b'z', b'X', b'Z', 0], vec![0; 100]].concat();
        let (d, archive) = open(&legacy_archive(&[xz], &config, "t:1"));
        let e = archive.into_layers(d.path()).unwrap_err().to_string();
        assert!(e.contains("Xz layers are not supported"), "{e}");
    }
}
