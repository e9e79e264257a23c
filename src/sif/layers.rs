//! Applies layer tars bottom to top onto a [`Tree`], with the OCI whiteout rules (spec
//! §3.3, as umoci applies them, which apptainer uses):
//!
//! - each layer keeps the set U of paths it created (with their ancestors), as a stamp
//!   on the nodes;
//! - `D/.wh..wh..opq` deletes every child of `D` not in U, wherever it appears in the tar;
//! - `D/.wh.NAME` deletes `D/NAME` and its subtree except the parts in U (whiteouts only
//!   hide lower layers); other `.wh..wh.*` names (aufs metadata) are skipped; whiteout
//!   files never appear in the result;
//! - a normal entry's *parent* components are resolved inside the root, following
//!   symlinks (`lib -> usr/lib`, then `lib/x` lands in `usr/lib/x`); a non-directory
//!   parent is replaced by a directory; missing parents are created (0755);
//!   an existing path is deleted first unless both are directories (then only the
//!   metadata changes);
//! - a hardlink shares the inode of its target (same or lower layer, chains included);
//! - `..` components are resolved lexically and clamped at the root, so no entry can
//!   land outside it; symlink targets (absolute ones too) are kept as they are.
//!
//! Only metadata is read: a file's bytes stay in the layer, recorded as
//! (source, offset) and read again when the squashfs is written.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt as _;

use super::tree::{Data, Inode, Kind, NodeId, Tree, ROOT};
use super::SifError;

/// Symlinks followed while resolving one path before giving up (Linux uses 40).
const MAX_SYMLINK_HOPS: u32 = 40;

/// One layer tar (uncompressed) inside a data source file.
#[derive(Clone, Debug)]
pub struct LayerRef {
    /// How errors name the layer (`<v1id>/layer.tar`, `blobs/sha256/…`).
    pub name: String,
    /// Index of the data source holding the tar (see [`super::archive::Sources`]).
    pub source: u32,
    /// Offset of the tar in the source.
    pub offset: u64,
    /// Length of the tar.
    pub len: u64,
}

/// What applying one layer did (for logs and tests).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LayerStats {
    pub entries: u64,
    pub whiteouts: u64,
    pub opaque: u64,
    pub hardlinks: u64,
    /// Entries dropped with a warning (escaping paths are clamped, not dropped; these
    /// are hardlinks to missing targets, unsupported types).
    pub skipped: u64,
}

/// A window of a file as a `Read + Seek` (positioned reads; the file is shared).
pub(crate) struct Window<'a> {
    pub(crate) file: &'a File,
    pub(crate) base: u64,
    pub(crate) len: u64,
    pub(crate) pos: u64,
}

impl Read for Window<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        if n == 0 {
            return Ok(0);
        }
        let got = self.file.read_at(&mut buf[..n], self.base + self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl Seek for Window<'_> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let new = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = new.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start")
        })?;
        Ok(self.pos)
    }
}

/// A path split into normal components, `..` clamped at the root. Returns whether a
/// `..` had to be clamped (the entry tried to escape).
fn normalise(raw: &[u8]) -> (Vec<&[u8]>, bool) {
    let mut out: Vec<&[u8]> = Vec::new();
    let mut escaped = false;
    for comp in raw.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    escaped = true;
                }
            }
            c => out.push(c),
        }
    }
    (out, escaped)
}

/// Applies layers in order (layer numbers start at 1).
pub struct Flattener<'a> {
    tree: &'a mut Tree,
    /// mtime of directories created implicitly (missing parents).
    default_mtime: i64,
}

impl<'a> Flattener<'a> {
    pub fn new(tree: &'a mut Tree, default_mtime: i64) -> Self {
        Self {
            tree,
            default_mtime,
        }
    }

    /// Resolves the directory `comps` names, following symlinks inside the root. With
    /// `create`, missing directories are made and non-directories replaced by
    /// directories; without, a missing or non-directory component gives `None`.
    fn resolve_dir(
        &mut self,
        comps: &[&[u8]],
        create: bool,
        layer: &str,
        entry: &str,
    ) -> Result<Option<NodeId>, SifError> {
        let mut pending: Vec<Vec<u8>> = comps.iter().rev().map(|c| c.to_vec()).collect();
        let mut cur = ROOT;
        let mut hops = 0;
        while let Some(comp) = pending.pop() {
            match comp.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    cur = self.tree.parent(cur);
                    continue;
                }
                _ => {}
            }
            let Some(child) = self.tree.child(cur, &comp) else {
                if !create {
                    return Ok(None);
                }
                let dir = Inode::dir(0o755, self.default_mtime);
                cur = self.tree.insert(cur, &comp, dir);
                continue;
            };
            match &self.tree.node_inode(child).kind {
                Kind::Dir => cur = child,
                Kind::Symlink(target) => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(SifError::LayerEntry {
                            layer: layer.to_owned(),
                            entry: entry.to_owned(),
                            problem: "too many levels of symbolic links in its parent path".into(),
                        });
                    }
                    let target = target.clone();
                    if target.first() == Some(&b'/') {
                        cur = ROOT;
                    }
                    for c in target.split(|b| *b == b'/').rev() {
                        pending.push(c.to_vec());
                    }
                }
                _ => {
                    if !create {
                        return Ok(None);
                    }
                    let dir = Inode::dir(0o755, self.default_mtime);
                    cur = self.tree.insert(cur, &comp, dir);
                }
            }
        }
        Ok(Some(cur))
    }

    /// Deletes every child of `dir` not created by `layer` (recursively through those
    /// that were).
    fn prune(&mut self, dir: NodeId, layer: u32) {
        let children: Vec<(Vec<u8>, NodeId)> = self
            .tree
            .children(dir)
            .map(|(n, c)| (n.to_vec(), c))
            .collect();
        for (name, child) in children {
            if self.tree.stamp(child) != layer {
                self.tree.remove(dir, &name);
            } else if self.tree.node_inode(child).is_dir() {
                self.prune(child, layer);
            }
        }
    }

    /// Applies the layer tar `layer_ref` (read from `file`) as layer number `number`.
    pub fn apply(
        &mut self,
        number: u32,
        file: &File,
        layer_ref: &LayerRef,
    ) -> Result<LayerStats, SifError> {
        let layer_name = layer_ref.name.as_str();
        let bad = |problem: String| SifError::InvalidLayer {
            layer: layer_name.to_owned(),
            problem,
        };
        let window = Window {
            file,
            base: layer_ref.offset,
            len: layer_ref.len,
            pos: 0,
        };
        let mut archive = tar::Archive::new(window);
        let mut stats = LayerStats::default();
        let entries = archive
            .entries_with_seek()
            .map_err(|e| bad(format!("not a tar archive ({e})")))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| bad(format!("unreadable tar entry ({e})")))?;
            let raw_path = entry.path_bytes().into_owned();
            let display = String::from_utf8_lossy(&raw_path).into_owned();
            let entry_err = |problem: String| SifError::LayerEntry {
                layer: layer_name.to_owned(),
                entry: display.clone(),
                problem,
            };
            let etype = entry.header().entry_type();
            if matches!(
                etype,
                tar::EntryType::XGlobalHeader
                    | tar::EntryType::XHeader
                    | tar::EntryType::GNULongName
                    | tar::EntryType::GNULongLink
            ) {
                continue;
            }
            stats.entries += 1;
            let (comps, escaped) = normalise(&raw_path);
            if escaped {
                log::warn!(
                    "layer `{layer_name}`: entry `{display}` escapes the root; placed at `/{}`",
                    String::from_utf8_lossy(&comps.join(&b'/'))
                );
            }
            let meta = EntryMeta::read(&mut entry).map_err(|e| entry_err(e.to_string()))?;

            let Some((name, parent_comps)) = comps.split_last() else {
                // The root itself: only a directory entry means something.
                if etype.is_dir() {
                    let root = self.tree.node_inode_mut(ROOT);
                    meta.apply_to(root);
                }
                continue;
            };
            let name: &[u8] = name;

            if let Some(hidden) = name.strip_prefix(b".wh.") {
                stats.whiteouts += 1;
                if hidden == b".wh..opq" {
                    stats.opaque += 1;
                    if let Some(dir) =
                        self.resolve_dir(parent_comps, false, layer_name, &display)?
                    {
                        self.prune(dir, number);
                    }
                    continue;
                }
                if hidden.starts_with(b".wh.") {
                    continue; // aufs metadata (.wh..wh.plnk, .wh..wh.aufs)
                }
                if hidden.is_empty() {
                    return Err(entry_err("a bare `.wh.` whiteout names nothing".into()));
                }
                let Some(dir) = self.resolve_dir(parent_comps, false, layer_name, &display)? else {
                    continue;
                };
                if let Some(victim) = self.tree.child(dir, hidden) {
                    if self.tree.stamp(victim) == number {
                        if self.tree.node_inode(victim).is_dir() {
                            self.prune(victim, number);
                        }
                    } else {
                        self.tree.remove(dir, hidden);
                    }
                }
                continue;
            }

            let Some(parent) = self.resolve_dir(parent_comps, true, layer_name, &display)? else {
                continue;
            };
            let existing = self.tree.child(parent, name);

            if etype == tar::EntryType::Link {
                stats.hardlinks += 1;
                let target_raw = entry
                    .link_name_bytes()
                    .map(|c| c.into_owned())
                    .unwrap_or_default();
                let (tcomps, _) = normalise(&target_raw);
                let target = match tcomps.split_last() {
                    Some((tname, tparent)) => self
                        .resolve_dir(tparent, false, layer_name, &display)?
                        .and_then(|d| self.tree.child(d, tname)),
                    None => None,
                };
                let Some(target) = target else {
                    log::warn!(
                        "layer `{layer_name}`: hardlink `{display}` points to `{}`, which does not exist; skipped",
                        String::from_utf8_lossy(&target_raw)
                    );
                    stats.skipped += 1;
                    continue;
                };
                if Some(target) == existing {
                    continue;
                }
                let inode = self.tree.inode_of(target);
                if self.tree.inode(inode).is_dir() {
                    return Err(entry_err(format!(
                        "a hardlink to the directory `{}`",
                        String::from_utf8_lossy(&target_raw)
                    )));
                }
                // As Docker and umoci do: the link entry's own metadata lands on the
                // shared inode (tar writers give it the target's).
                meta.apply_to(self.tree.inode_mut(inode));
                let node = self.tree.link(parent, name, inode);
                self.tree.stamp_path(node, number);
                continue;
            }

            let kind = match etype {
                tar::EntryType::Directory => Kind::Dir,
                tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File {
                    size: entry.size(),
                    data: Data::Source {
                        source: layer_ref.source,
                        offset: layer_ref.offset + entry.raw_file_position(),
                    },
                },
                tar::EntryType::Symlink => Kind::Symlink(
                    entry
                        .link_name_bytes()
                        .map(|c| c.into_owned())
                        .unwrap_or_default(),
                ),
                tar::EntryType::Char => Kind::CharDev {
                    major: meta.major,
                    minor: meta.minor,
                },
                tar::EntryType::Block => Kind::BlockDev {
                    major: meta.major,
                    minor: meta.minor,
                },
                tar::EntryType::Fifo => Kind::Fifo,
                tar::EntryType::GNUSparse => {
                    return Err(entry_err(
                        "GNU sparse files are not supported in image layers".into(),
                    ))
                }
                other => {
                    log::warn!(
                        "layer `{layer_name}`: entry `{display}` has unsupported type {other:?}; skipped"
                    );
                    stats.skipped += 1;
                    continue;
                }
            };
            let node = match existing {
                Some(e) if kind == Kind::Dir && self.tree.node_inode(e).is_dir() => {
                    meta.apply_to(self.tree.node_inode_mut(e));
                    e
                }
                _ => {
                    let mut inode = Inode::dir(0, 0);
                    inode.kind = kind;
                    meta.apply_to(&mut inode);
                    self.tree.insert(parent, name, inode)
                }
            };
            self.tree.stamp_path(node, number);
        }
        Ok(stats)
    }
}

/// The metadata of one tar entry (header, PAX overrides, xattrs).
struct EntryMeta {
    mode: u16,
    uid: u32,
    gid: u32,
    mtime: i64,
    major: u32,
    minor: u32,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl EntryMeta {
    fn read<R: Read>(entry: &mut tar::Entry<'_, R>) -> std::io::Result<Self> {
        let h = entry.header();
        let mut meta = Self {
            mode: (h.mode()? & 0o7777) as u16,
            uid: u32::try_from(h.uid()?).unwrap_or(u32::MAX),
            gid: u32::try_from(h.gid()?).unwrap_or(u32::MAX),
            mtime: i64::try_from(h.mtime()?).unwrap_or(i64::MAX),
            major: 0,
            minor: 0,
            xattrs: Vec::new(),
        };
        if matches!(h.entry_type(), tar::EntryType::Char | tar::EntryType::Block) {
            meta.major = h.device_major()?.unwrap_or(0);
            meta.minor = h.device_minor()?.unwrap_or(0);
        }
        if let Some(pax) = entry.pax_extensions()? {
            for ext in pax {
                let ext = ext?;
                let Ok(key) = ext.key() else { continue };
                if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    meta.xattrs
                        .push((name.as_bytes().to_vec(), ext.value_bytes().to_vec()));
                    continue;
                }
                let value = ext.value().ok();
                match key {
                    "uid" => {
                        if let Some(v) = value.and_then(|v| v.parse().ok()) {
                            meta.uid = v;
                        }
                    }
                    "gid" => {
                        if let Some(v) = value.and_then(|v| v.parse().ok()) {
                            meta.gid = v;
                        }
                    }
                    "mtime" => {
                        let secs = value.and_then(|v| v.split('.').next()?.parse().ok());
                        if let Some(v) = secs {
                            meta.mtime = v;
                        }
                    }
                    _ => {}
                }
            }
        }
        meta.xattrs.sort();
        Ok(meta)
    }

    fn apply_to(&self, inode: &mut Inode) {
        inode.mode = self.mode;
        inode.uid = self.uid;
        inode.gid = self.gid;
        inode.mtime = self.mtime;
        inode.xattrs.clone_from(&self.xattrs);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write as _;

    /// A layer tar built in memory.
    pub(crate) struct LayerTar {
        builder: tar::Builder<Vec<u8>>,
    }

    impl LayerTar {
        pub(crate) fn new() -> Self {
            Self {
                builder: tar::Builder::new(Vec::new()),
            }
        }
        fn header(kind: tar::EntryType, mode: u32) -> tar::Header {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1_600_000_000);
            h.set_size(0);
            h
        }
        pub(crate) fn dir(mut self, path: &str, mode: u32) -> Self {
            let mut h = Self::header(tar::EntryType::Directory, mode);
            self.builder
                .append_data(&mut h, path, std::io::empty())
                .unwrap();
            self
        }
        pub(crate) fn file(self, path: &str, data: &[u8]) -> Self {
            self.file_owned(path, data, 0o644, 0, 0)
        }
        pub(crate) fn file_owned(
            mut self,
            path: &str,
            data: &[u8],
            mode: u32,
            uid: u64,
            gid: u64,
        ) -> Self {
            let mut h = Self::header(tar::EntryType::Regular, mode);
            h.set_size(data.len() as u64);
            h.set_uid(uid);
            h.set_gid(gid);
            self.builder.append_data(&mut h, path, data).unwrap();
            self
        }
        /// A raw name (no normalisation by the tar crate), e.g. with `../`.
        pub(crate) fn raw_file(mut self, path: &str, data: &[u8]) -> Self {
            let mut h = Self::header(tar::EntryType::Regular, 0o644);
            h.set_size(data.len() as u64);
            let name = &mut h.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            self.builder.append(&h, data).unwrap();
            self
        }
        pub(crate) fn symlink(mut self, path: &str, target: &str) -> Self {
            let mut h = Self::header(tar::EntryType::Symlink, 0o777);
            self.builder.append_link(&mut h, path, target).unwrap();
            self
        }
        pub(crate) fn hardlink(self, path: &str, target: &str) -> Self {
            self.hardlink_mode(path, target, 0o644)
        }
        pub(crate) fn hardlink_mode(mut self, path: &str, target: &str, mode: u32) -> Self {
            let mut h = Self::header(tar::EntryType::Link, mode);
            self.builder.append_link(&mut h, path, target).unwrap();
            self
        }
        pub(crate) fn device(mut self, path: &str, block: bool, major: u32, minor: u32) -> Self {
            let kind = if block {
                tar::EntryType::Block
            } else {
                tar::EntryType::Char
            };
            let mut h = Self::header(kind, 0o660);
            h.set_device_major(major).unwrap();
            h.set_device_minor(minor).unwrap();
            self.builder
                .append_data(&mut h, path, std::io::empty())
                .unwrap();
            self
        }
        pub(crate) fn fifo(mut self, path: &str) -> Self {
            let mut h = Self::header(tar::EntryType::Fifo, 0o600);
            self.builder
                .append_data(&mut h, path, std::io::empty())
                .unwrap();
            self
        }
        pub(crate) fn xattr_file(
            mut self,
            path: &str,
            data: &[u8],
            key: &str,
            value: &[u8],
        ) -> Self {
            let pax_key = format!("SCHILY.xattr.{key}");
            self.builder
                .append_pax_extensions([(pax_key.as_str(), value)])
                .unwrap();
            let mut h = Self::header(tar::EntryType::Regular, 0o755);
            h.set_size(data.len() as u64);
            self.builder.append_data(&mut h, path, data).unwrap();
            self
        }
        pub(crate) fn finish(self) -> Vec<u8> {
            self.builder.into_inner().unwrap()
        }
    }

    /// Writes the layers into one temp file and flattens them.
    pub(crate) fn flatten(layers: &[Vec<u8>]) -> (Tree, File) {
        let mut file = tempfile::tempfile().unwrap();
        let mut refs = Vec::new();
        let mut offset = 0u64;
        for (i, l) in layers.iter().enumerate() {
            file.write_all(l).unwrap();
            refs.push(LayerRef {
                name: format!("layer{i}"),
                source: 0,
                offset,
                len: l.len() as u64,
            });
            offset += l.len() as u64;
        }
        let mut tree = Tree::new(0);
        let mut f = Flattener::new(&mut tree, 0);
        for (i, r) in refs.iter().enumerate() {
            f.apply(i as u32 + 1, &file, r).unwrap();
        }
        (tree, file)
    }

    pub(crate) fn content(tree: &Tree, file: &File, path: &str) -> Vec<u8> {
        let node = tree
            .lookup(path)
            .unwrap_or_else(|| panic!("{path} missing"));
        match &tree.node_inode(node).kind {
            Kind::File {
                size,
                data: Data::Source { offset, .. },
            } => {
                let mut buf = vec![0u8; *size as usize];
                file.read_exact_at(&mut buf, *offset).unwrap();
                buf
            }
            Kind::File {
                data: Data::Inline(b),
                ..
            } => b.clone(),
            other => panic!("{path} is {other:?}"),
        }
    }

    fn paths(tree: &Tree) -> Vec<String> {
        tree.walk().into_iter().map(|(p, _)| p).collect()
    }

    #[test]
    fn whiteouts_hide_lower_layers_only() {
        let l1 = LayerTar::new()
            .dir("etc", 0o755)
            .file("etc/keep", b"k")
            .file("etc/gone", b"g")
            .dir("opt/d", 0o755)
            .file("opt/d/inner", b"i")
            .finish();
        let l2 = LayerTar::new()
            .file("etc/.wh.gone", b"")
            .file("opt/.wh.d", b"")
            // Recreated in the same layer after its whiteout: kept.
            .file("opt/d/new", b"n")
            .file("etc/.wh..wh.plnk", b"")
            .finish();
        let (tree, file) = flatten(&[l1, l2]);
        assert_eq!(
            paths(&tree),
            ["", "etc", "etc/keep", "opt", "opt/d", "opt/d/new"]
        );
        assert_eq!(content(&tree, &file, "opt/d/new"), b"n");
    }

    #[test]
    fn opaque_directory_keeps_only_this_layer() {
        let l1 = LayerTar::new()
            .file("d/old", b"o")
            .file("d/sub/old2", b"o")
            .file("e/x", b"x")
            .finish();
        // The opaque marker after an entry of the same layer: still applies, and keeps it.
        let l2 = LayerTar::new()
            .file("d/sub/new", b"n")
            .file("d/.wh..wh..opq", b"")
            .finish();
        let (tree, _) = flatten(&[l1, l2]);
        assert_eq!(paths(&tree), ["", "d", "d/sub", "d/sub/new", "e", "e/x"]);
    }

    #[test]
    fn file_and_directory_replace_each_other() {
        let l1 = LayerTar::new()
            .file("a", b"file a")
            .dir("b", 0o700)
            .file("b/child", b"c")
            .finish();
        let l2 = LayerTar::new()
            .dir("a", 0o711)
            .file("a/inside", b"i")
            .file("b", b"now a file")
            .finish();
        let (tree, file) = flatten(&[l1, l2]);
        assert_eq!(paths(&tree), ["", "a", "a/inside", "b"]);
        let a = tree.node_inode(tree.lookup("a").unwrap());
        assert!(a.is_dir());
        assert_eq!(a.mode, 0o711);
        assert_eq!(content(&tree, &file, "b"), b"now a file");
    }

    #[test]
    fn non_directory_parent_is_replaced() {
        let l1 = LayerTar::new().file("x", b"plain").finish();
        let l2 = LayerTar::new().file("x/y", b"below").finish();
        let (tree, file) = flatten(&[l1, l2]);
        assert!(tree.node_inode(tree.lookup("x").unwrap()).is_dir());
        assert_eq!(content(&tree, &file, "x/y"), b"below");
    }

    #[test]
    fn dir_over_dir_updates_metadata_and_keeps_children() {
        let l1 = LayerTar::new().dir("d", 0o755).file("d/f", b"f").finish();
        let l2 = LayerTar::new().dir("d", 0o1777).finish();
        let (tree, _) = flatten(&[l1, l2]);
        assert_eq!(paths(&tree), ["", "d", "d/f"]);
        assert_eq!(tree.node_inode(tree.lookup("d").unwrap()).mode, 0o1777);
    }

    #[test]
    fn hardlinks_across_layers_and_chains_share_one_inode() {
        let l1 = LayerTar::new()
            .file_owned("bin/busybox", b"BB", 0o4755, 0, 0)
            .finish();
        let l2 = LayerTar::new()
            .hardlink_mode("bin/sh", "bin/busybox", 0o4755)
            .hardlink_mode("bin/ls", "bin/sh", 0o4755)
            .hardlink("bin/missing", "nowhere/x")
            .finish();
        let (tree, file) = flatten(&[l1, l2]);
        let ino = |p: &str| tree.inode_of(tree.lookup(p).unwrap());
        assert_eq!(ino("bin/sh"), ino("bin/busybox"));
        assert_eq!(ino("bin/ls"), ino("bin/busybox"));
        assert!(tree.lookup("bin/missing").is_none());
        assert_eq!(content(&tree, &file, "bin/ls"), b"BB");
        assert_eq!(tree.node_inode(tree.lookup("bin/ls").unwrap()).mode, 0o4755);
    }

    #[test]
    fn symlinked_parent_directories_are_followed() {
        let l1 = LayerTar::new()
            .dir("usr/lib", 0o755)
            .symlink("lib", "usr/lib")
            .symlink("abs", "/usr/lib")
            .symlink("dangling", "/opt/made")
            .finish();
        let l2 = LayerTar::new()
            .file("lib/x", b"x")
            .file("abs/y", b"y")
            .file("dangling/z", b"z")
            .finish();
        let (tree, file) = flatten(&[l1, l2]);
        assert_eq!(content(&tree, &file, "usr/lib/x"), b"x");
        assert_eq!(content(&tree, &file, "usr/lib/y"), b"y");
        assert_eq!(content(&tree, &file, "opt/made/z"), b"z");
        // The symlinks stay symlinks, with their targets as written.
        let target = |p: &str| match &tree.node_inode(tree.lookup(p).unwrap()).kind {
            Kind::Symlink(t) => String::from_utf8(t.clone()).unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(target("lib"), "usr/lib");
        assert_eq!(target("abs"), "/usr/lib");
    }

    #[test]
    fn symlink_loop_is_an_error_naming_the_entry() {
        let l1 = LayerTar::new().symlink("a", "b").symlink("b", "a").finish();
        let l2 = LayerTar::new().file("a/x", b"").finish();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&l1).unwrap();
        file.write_all(&l2).unwrap();
        let mut tree = Tree::new(0);
        let mut f = Flattener::new(&mut tree, 0);
        let r1 = LayerRef {
            name: "one".into(),
            source: 0,
            offset: 0,
            len: l1.len() as u64,
        };
        let r2 = LayerRef {
            name: "two".into(),
            source: 0,
            offset: l1.len() as u64,
            len: l2.len() as u64,
        };
        f.apply(1, &file, &r1).unwrap();
        let e = f.apply(2, &file, &r2).unwrap_err().to_string();
        assert!(
            e.contains("`two`") && e.contains("`a/x`") && e.contains("symbolic"),
            "{e}"
        );
    }

    #[test]
    fn escaping_paths_are_clamped_inside_the_root() {
        let l1 = LayerTar::new()
            .raw_file("../../etc/evil", b"e")
            .raw_file("./a/../../b", b"b")
            .finish();
        let (tree, file) = flatten(&[l1]);
        assert_eq!(paths(&tree), ["", "b", "etc", "etc/evil"]);
        assert_eq!(content(&tree, &file, "etc/evil"), b"e");
    }

    #[test]
    fn devices_fifos_modes_and_xattrs_are_kept() {
        let l1 = LayerTar::new()
            .device("dev/null", false, 1, 3)
            .device("dev/sda", true, 8, 0)
            .fifo("run/fifo")
            .file_owned("usr/bin/sudo", b"s", 0o4755, 0, 0)
            .file_owned("home/u/f", b"u", 0o2640, 1000, 100)
            .dir("tmp", 0o1777)
            .xattr_file("usr/bin/ping", b"p", "security.capability", b"\x01\x02")
            .finish();
        let (tree, _) = flatten(&[l1]);
        let inode = |p: &str| tree.node_inode(tree.lookup(p).unwrap()).clone();
        assert_eq!(inode("dev/null").kind, Kind::CharDev { major: 1, minor: 3 });
        assert_eq!(inode("dev/sda").kind, Kind::BlockDev { major: 8, minor: 0 });
        assert_eq!(inode("run/fifo").kind, Kind::Fifo);
        assert_eq!(inode("usr/bin/sudo").mode, 0o4755);
        let f = inode("home/u/f");
        assert_eq!((f.mode, f.uid, f.gid), (0o2640, 1000, 100));
        assert_eq!(inode("tmp").mode, 0o1777);
        assert_eq!(
            inode("usr/bin/ping").xattrs,
            vec![(b"security.capability".to_vec(), b"\x01\x02".to_vec())]
        );
    }

    #[test]
    fn a_bare_whiteout_is_an_error() {
        let l1 = LayerTar::new().file("d/.wh.", b"").finish();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&l1).unwrap();
        let mut tree = Tree::new(0);
        let r = LayerRef {
            name: "l".into(),
            source: 0,
            offset: 0,
            len: l1.len() as u64,
        };
        let e = Flattener::new(&mut tree, 0)
            .apply(1, &file, &r)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bare"), "{e}");
    }
}
