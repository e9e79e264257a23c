//! A squashfs 4.0 writer for a flattened [`Tree`]: gzip (zlib streams, compression id 1),
//! 128 KiB blocks, tails packed into fragments, hardlinks kept as hardlinks (one inode,
//! its `nlink`; extended inodes where the basic ones cannot say it), symlinks,
//! char/block devices, fifos, sockets, uid/gid id table, mtimes, xattrs
//! (`user.`/`trusted.`/`security.`), and an NFS export table. The output is
//! `bytes_used` padded to 4 KiB, deterministic: the same tree gives the same bytes.
//!
//! Layout, in the order the kernel's sanity checks expect: superblock, data blocks and
//! fragment blocks, inode table, directory table, fragment table, export table, id
//! table, xattr table; each lookup table as metadata blocks followed by its index.
//!
//! Data blocks are compressed on a small pool of threads while the calling thread reads
//! the next blocks; results are written in submission order, so the pool changes speed,
//! never bytes. At most a few blocks per thread are in flight (bounded memory).
//!
//! **Compression level.** The default gzip level is [`DEFAULT_LEVEL`] = 6 (zlib-rs).
//! Measured on the real-kipoi base image (380 MiB of file data, 19523 inodes, 2 cores,
//! whole conversion from the Engine): level 1 6.3 s / 168 MiB, level 4 6.0 s / 132 MiB,
//! level 6 5.7 s / 129 MiB, level 9 16.7 s / 126 MiB; mksquashfs `-comp gzip` (level 9)
//! alone takes 24.5 s for 123 MiB. Level 6 is as fast as the fastest and within 5 % of
//! mksquashfs' size (`bench/sif_convert.py`).
//!
//! Duplicate file contents are not detected (only hardlinks share data).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use flate2::{Compress, Compression, FlushCompress, Status};

use super::tree::{Data, InodeId, Kind, NodeId, Tree, ROOT};
use super::SifError;

/// Data block size (128 KiB, what apptainer's mksquashfs uses).
pub const BLOCK_SIZE: usize = 1 << 17;
const BLOCK_LOG: u16 = 17;
const METADATA_SIZE: usize = 8192;
const SUPERBLOCK_LEN: u64 = 96;
const UNCOMPRESSED_BLOCK: u32 = 1 << 24;
const UNCOMPRESSED_META: u16 = 1 << 15;
const INVALID_FRAG: u32 = 0xFFFF_FFFF;
const INVALID_XATTR: u32 = 0xFFFF_FFFF;
/// gzip level used unless told otherwise (measurements in the module doc).
pub const DEFAULT_LEVEL: u32 = 6;

const FLAG_ALWAYS_FRAGMENTS: u16 = 1 << 5;
const FLAG_EXPORTABLE: u16 = 1 << 7;

/// How to write.
#[derive(Clone, Debug)]
pub struct SquashfsOptions {
    /// The superblock's `mkfs_time` (Unix seconds, clamped to u32).
    pub mkfs_time: i64,
    /// zlib level 1..=9.
    pub level: u32,
    /// Compression threads (at least 1).
    pub threads: usize,
}

impl Default for SquashfsOptions {
    fn default() -> Self {
        Self {
            mkfs_time: 0,
            level: DEFAULT_LEVEL,
            threads: std::thread::available_parallelism().map_or(2, usize::from),
        }
    }
}

/// What was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SquashfsSummary {
    /// The superblock's `bytes_used`.
    pub bytes_used: u64,
    /// Bytes written: `bytes_used` padded to 4 KiB.
    pub len: u64,
    pub inodes: u32,
    pub fragments: u32,
    pub ids: usize,
    /// Uncompressed bytes of file data.
    pub data_bytes: u64,
}

fn clamp_u32(t: i64) -> u32 {
    u32::try_from(t.max(0)).unwrap_or(u32::MAX)
}

/// Compresses `data` with zlib, `None` when that does not make it smaller.
fn deflate(c: &mut Compress, data: &[u8]) -> Option<Vec<u8>> {
    c.reset();
    let mut out = Vec::with_capacity(data.len());
    match c.compress_vec(data, &mut out, FlushCompress::Finish) {
        Ok(Status::StreamEnd) if out.len() < data.len() => Some(out),
        _ => None,
    }
}

/// A metadata stream: 8 KiB blocks, each stored with a 2-byte length header.
struct MetaWriter {
    compress: Compress,
    block: Vec<u8>,
    out: Vec<u8>,
}

impl MetaWriter {
    fn new(level: u32) -> Self {
        Self {
            compress: Compress::new(Compression::new(level), true),
            block: Vec::with_capacity(METADATA_SIZE),
            out: Vec::new(),
        }
    }
    /// (start of the current block in the compressed stream, offset in the block).
    fn pos(&self) -> (u32, u16) {
        (
            u32::try_from(self.out.len()).unwrap_or(u32::MAX),
            self.block.len() as u16,
        )
    }
    fn write(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let n = (METADATA_SIZE - self.block.len()).min(bytes.len());
            self.block.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.block.len() == METADATA_SIZE {
                self.flush();
            }
        }
    }
    fn flush(&mut self) {
        if self.block.is_empty() {
            return;
        }
        match deflate(&mut self.compress, &self.block) {
            Some(c) => {
                self.out.extend_from_slice(&(c.len() as u16).to_le_bytes());
                self.out.extend_from_slice(&c);
            }
            None => {
                let len = self.block.len() as u16 | UNCOMPRESSED_META;
                self.out.extend_from_slice(&len.to_le_bytes());
                self.out.extend_from_slice(&self.block);
            }
        }
        self.block.clear();
    }
    /// The compressed stream and the start of each of its blocks.
    fn finish(mut self) -> (Vec<u8>, Vec<u64>) {
        self.flush();
        let mut starts = Vec::new();
        let mut at = 0usize;
        while at + 2 <= self.out.len() {
            starts.push(at as u64);
            let len = u16::from_le_bytes([self.out[at], self.out[at + 1]]) & !UNCOMPRESSED_META;
            at += 2 + usize::from(len);
        }
        (self.out, starts)
    }
}

/// Little-endian field builder.
#[derive(Default)]
struct Buf(Vec<u8>);

impl Buf {
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
}

/// Where a regular file's data went.
#[derive(Clone, Debug, Default)]
struct FileLayout {
    start: u64,
    blocks: Vec<u32>,
    fragment: Option<(u32, u32)>,
}

/// The output with its position relative to the squashfs start.
struct Out<'a, W: Write> {
    w: std::io::BufWriter<&'a mut W>,
    pos: u64,
    path: &'a Path,
}

impl<W: Write> Out<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), SifError> {
        self.w
            .write_all(bytes)
            .map_err(SifError::io(self.path, "write the squashfs partition of"))?;
        self.pos += bytes.len() as u64;
        Ok(())
    }
}

enum Tag {
    Block(InodeId),
    Fragment,
}

/// A compressed block: the bytes to store and the size word of the tables.
type Compressed = (Vec<u8>, u32);
/// Reads a file's bytes at an offset into a buffer.
type ReadAt<'r> = &'r dyn Fn(u64, &mut [u8]) -> Result<(), SifError>;
/// One inode's xattrs: (prefix id, name without prefix, value).
type XattrSet = Vec<(u16, Vec<u8>, Vec<u8>)>;

struct Job {
    data: Vec<u8>,
    reply: SyncSender<Compressed>,
}

/// Compresses a data block: (bytes to store, size word for the inode/fragment table).
fn compress_block(c: &mut Compress, data: Vec<u8>) -> (Vec<u8>, u32) {
    match deflate(c, &data) {
        Some(out) => {
            let len = out.len() as u32;
            (out, len)
        }
        None => {
            let len = data.len() as u32 | UNCOMPRESSED_BLOCK;
            (data, len)
        }
    }
}

/// Writes the data section: every regular file's blocks, tails packed into fragments.
struct DataWriter<'a, 'o, W: Write> {
    out: &'a mut Out<'o, W>,
    jobs: Option<SyncSender<Job>>,
    pending: VecDeque<(Tag, Receiver<Compressed>)>,
    max_pending: usize,
    layouts: HashMap<InodeId, FileLayout>,
    fragment: Vec<u8>,
    fragments: Vec<(u64, u32)>,
    /// Fragments submitted so far (the table index of the one being filled).
    fragment_count: u32,
    data_bytes: u64,
}

impl<W: Write> DataWriter<'_, '_, W> {
    fn submit(&mut self, tag: Tag, data: Vec<u8>) -> Result<(), SifError> {
        while self.pending.len() >= self.max_pending {
            self.retire()?;
        }
        let (reply, rx) = sync_channel(1);
        let sent = self
            .jobs
            .as_ref()
            .is_some_and(|j| j.send(Job { data, reply }).is_ok());
        if !sent {
            return Err(SifError::Squashfs {
                problem: "the compression threads stopped".into(),
            });
        }
        self.pending.push_back((tag, rx));
        Ok(())
    }

    fn retire(&mut self) -> Result<(), SifError> {
        let Some((tag, rx)) = self.pending.pop_front() else {
            return Ok(());
        };
        let (bytes, size) = rx.recv().map_err(|_| SifError::Squashfs {
            problem: "a compression thread stopped".into(),
        })?;
        let at = self.out.pos;
        self.out.write(&bytes)?;
        match tag {
            Tag::Block(inode) => {
                let layout = self.layouts.entry(inode).or_default();
                if layout.blocks.is_empty() {
                    layout.start = at;
                }
                layout.blocks.push(size);
            }
            Tag::Fragment => self.fragments.push((at, size)),
        }
        Ok(())
    }

    fn flush_fragment(&mut self) -> Result<(), SifError> {
        if self.fragment.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(&mut self.fragment);
        self.fragment_count += 1;
        self.submit(Tag::Fragment, data)
    }

    fn add_file(&mut self, inode: InodeId, size: u64, read: ReadAt<'_>) -> Result<(), SifError> {
        self.data_bytes += size;
        // A file without full blocks keeps start 0 (never read); others get the position
        // of their first block when it is written.
        self.layouts.entry(inode).or_default();
        let full = size / BLOCK_SIZE as u64;
        let tail = (size % BLOCK_SIZE as u64) as usize;
        for i in 0..full {
            let mut buf = vec![0u8; BLOCK_SIZE];
            read(i * BLOCK_SIZE as u64, &mut buf)?;
            self.submit(Tag::Block(inode), buf)?;
        }
        if tail > 0 {
            if self.fragment.len() + tail > BLOCK_SIZE {
                self.flush_fragment()?;
            }
            let offset = self.fragment.len();
            self.fragment.resize(offset + tail, 0);
            read(full * BLOCK_SIZE as u64, &mut self.fragment[offset..])?;
            let index = self.fragment_count;
            self.layouts.entry(inode).or_default().fragment = Some((index, offset as u32));
        }
        Ok(())
    }
}

/// A numbered inode and where it was written.
#[derive(Clone, Copy)]
struct Written {
    number: u32,
    reference: (u32, u16),
    basic_type: u16,
}

/// One directory entry for the directory table.
struct Entry {
    name: Vec<u8>,
    w: Written,
}

/// Splits an xattr name into (squashfs prefix id, rest).
fn xattr_prefix(name: &[u8]) -> Option<(u16, &[u8])> {
    if let Some(r) = name.strip_prefix(b"user.") {
        Some((0, r))
    } else if let Some(r) = name.strip_prefix(b"trusted.") {
        Some((1, r))
    } else {
        name.strip_prefix(b"security.").map(|r| (2, r))
    }
}

/// Writes `tree` as squashfs at the current position of `out` (the squashfs offsets are
/// relative to it). `sources` are the files [`Data::Source`] refers to; `out_path` and
/// `source_path` name them in errors.
pub fn write_squashfs<W: Write + Seek>(
    tree: &Tree,
    sources: &[File],
    out: &mut W,
    out_path: &Path,
    source_path: &Path,
    opts: &SquashfsOptions,
) -> Result<SquashfsSummary, SifError> {
    let base = out
        .stream_position()
        .map_err(SifError::io(out_path, "seek in"))?;
    let level = opts.level.clamp(1, 9);

    // 1. Number the inodes: each directory's children consecutively, root = 1.
    let mut numbers: HashMap<InodeId, u32> = HashMap::new();
    let mut nlink: HashMap<InodeId, u32> = HashMap::new();
    let mut order: Vec<InodeId> = Vec::new();
    let mut ids: BTreeSet<u32> = BTreeSet::new();
    {
        let root = tree.inode_of(ROOT);
        numbers.insert(root, 1);
        order.push(root);
        let mut stack = vec![ROOT];
        while let Some(dir) = stack.pop() {
            let dir_inode = tree.inode_of(dir);
            let mut subdirs = Vec::new();
            let mut dir_links = 2;
            for (_, child) in tree.children(dir) {
                let ino = tree.inode_of(child);
                if tree.inode(ino).is_dir() {
                    dir_links += 1;
                    subdirs.push(child);
                }
                *nlink.entry(ino).or_insert(0) += 1;
                if let std::collections::hash_map::Entry::Vacant(e) = numbers.entry(ino) {
                    e.insert(order.len() as u32 + 1);
                    order.push(ino);
                }
            }
            nlink.insert(dir_inode, dir_links);
            stack.extend(subdirs.into_iter().rev());
        }
    }
    for &ino in &order {
        let i = tree.inode(ino);
        ids.insert(i.uid);
        ids.insert(i.gid);
    }
    if ids.len() > 65_536 {
        return Err(SifError::Squashfs {
            problem: format!("{} distinct uids/gids; squashfs holds 65536", ids.len()),
        });
    }
    let id_index: HashMap<u32, u16> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i as u16))
        .collect();
    let inode_count = u32::try_from(order.len()).map_err(|_| SifError::Squashfs {
        problem: "more than 2^32 inodes".into(),
    })?;

    let mut w = Out {
        w: std::io::BufWriter::with_capacity(1 << 20, out),
        pos: 0,
        path: out_path,
    };
    w.write(&[0u8; SUPERBLOCK_LEN as usize])?;

    // 2. Data: every regular file once (hardlinks share), in inode-number order.
    let threads = opts.threads.max(1);
    let (job_tx, job_rx) = sync_channel::<Job>(threads * 2);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (layouts, fragments, data_bytes) = std::thread::scope(|scope| {
        for _ in 0..threads {
            let rx = Arc::clone(&job_rx);
            scope.spawn(move || {
                let mut c = Compress::new(Compression::new(level), true);
                loop {
                    let job = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let _ = job.reply.send(compress_block(&mut c, job.data));
                }
            });
        }
        let mut dw = DataWriter {
            out: &mut w,
            jobs: Some(job_tx),
            pending: VecDeque::new(),
            max_pending: threads * 4,
            layouts: HashMap::new(),
            fragment: Vec::new(),
            fragments: Vec::new(),
            fragment_count: 0,
            data_bytes: 0,
        };
        let result = (|| -> Result<(), SifError> {
            for &ino in &order {
                let Kind::File { size, data } = &tree.inode(ino).kind else {
                    continue;
                };
                let read = |offset: u64, buf: &mut [u8]| -> Result<(), SifError> {
                    match data {
                        Data::Inline(bytes) => {
                            let start = offset as usize;
                            let src = bytes.get(start..start + buf.len()).ok_or_else(|| {
                                SifError::Squashfs {
                                    problem: "inline file shorter than its size".into(),
                                }
                            })?;
                            buf.copy_from_slice(src);
                            Ok(())
                        }
                        Data::Source { source, offset: at } => {
                            let file = sources.get(*source as usize).ok_or_else(|| {
                                SifError::Squashfs {
                                    problem: format!("data source {source} is missing"),
                                }
                            })?;
                            file.read_exact_at(buf, at + offset)
                                .map_err(SifError::io(source_path, "read layer data from"))
                        }
                    }
                };
                dw.add_file(ino, *size, &read)?;
            }
            dw.flush_fragment()?;
            while !dw.pending.is_empty() {
                dw.retire()?;
            }
            Ok(())
        })();
        // Closing the job channel stops the workers (also on error).
        dw.jobs = None;
        dw.pending.clear();
        result.map(|()| (dw.layouts, dw.fragments, dw.data_bytes))
    })?;

    // 3. Xattr sets (deduplicated).
    let mut xattr_sets: BTreeMap<XattrSet, u32> = BTreeMap::new();
    let mut xattr_of: HashMap<InodeId, u32> = HashMap::new();
    for &ino in &order {
        let i = tree.inode(ino);
        if i.xattrs.is_empty() {
            continue;
        }
        let file_or_dir = matches!(i.kind, Kind::File { .. } | Kind::Dir);
        let mut set = Vec::new();
        for (name, value) in &i.xattrs {
            match xattr_prefix(name) {
                Some((0, _)) if !file_or_dir => {}
                Some((prefix, rest)) => set.push((prefix, rest.to_vec(), value.clone())),
                None => log::warn!(
                    "xattr `{}` has a prefix squashfs cannot store; dropped",
                    String::from_utf8_lossy(name)
                ),
            }
        }
        if set.is_empty() {
            continue;
        }
        let next = xattr_sets.len() as u32;
        let id = *xattr_sets.entry(set).or_insert(next);
        xattr_of.insert(ino, id);
    }

    // 4. Inodes and directories, children before their directory.
    let mut inodes = MetaWriter::new(level);
    let mut dirs = MetaWriter::new(level);
    let mut written: HashMap<InodeId, Written> = HashMap::new();
    let mut lookup = vec![0u64; order.len()];
    let uid_gid = |ino: InodeId| {
        let i = tree.inode(ino);
        (
            id_index.get(&i.uid).copied().unwrap_or(0),
            id_index.get(&i.gid).copied().unwrap_or(0),
        )
    };
    let header = |b: &mut Buf, kind: u16, ino: InodeId, number: u32| {
        let i = tree.inode(ino);
        let (uid, gid) = uid_gid(ino);
        b.u16(kind)
            .u16(i.mode & 0o7777)
            .u16(uid)
            .u16(gid)
            .u32(clamp_u32(i.mtime))
            .u32(number);
    };
    let mut write_inode = |b: Buf, number: u32, basic: u16, inodes: &mut MetaWriter| {
        let reference = inodes.pos();
        inodes.write(&b.0);
        lookup[number as usize - 1] = (u64::from(reference.0) << 16) | u64::from(reference.1);
        Written {
            number,
            reference,
            basic_type: basic,
        }
    };

    struct Frame {
        node: NodeId,
        name: Vec<u8>,
        children: Vec<(Vec<u8>, NodeId)>,
        next: usize,
        entries: Vec<Entry>,
    }
    let frame = |node: NodeId, name: Vec<u8>| Frame {
        node,
        name,
        children: tree.children(node).map(|(n, c)| (n.to_vec(), c)).collect(),
        next: 0,
        entries: Vec::new(),
    };
    let mut stack = vec![frame(ROOT, Vec::new())];
    let mut root_ref = (0u32, 0u16);
    while let Some(top) = stack.last_mut() {
        if top.next < top.children.len() {
            let (name, child) = top.children[top.next].clone();
            top.next += 1;
            if name.len() > 256 {
                return Err(SifError::Squashfs {
                    problem: format!(
                        "the name `{}` is longer than 256 bytes",
                        String::from_utf8_lossy(&name)
                    ),
                });
            }
            let ino = tree.inode_of(child);
            if tree.inode(ino).is_dir() {
                stack.push(frame(child, name));
                continue;
            }
            let w = match written.get(&ino) {
                Some(w) => *w,
                None => {
                    let number = numbers.get(&ino).copied().unwrap_or(0);
                    let links = nlink.get(&ino).copied().unwrap_or(1);
                    let xattr = xattr_of.get(&ino).copied();
                    let i = tree.inode(ino);
                    let mut b = Buf::default();
                    let basic = match &i.kind {
                        Kind::File { size, .. } => {
                            let l = layouts.get(&ino).cloned().unwrap_or_default();
                            let (frag, frag_off) = l.fragment.unwrap_or((INVALID_FRAG, 0));
                            let small = links == 1
                                && xattr.is_none()
                                && l.start <= u64::from(u32::MAX)
                                && *size <= u64::from(u32::MAX);
                            if small {
                                header(&mut b, 2, ino, number);
                                b.u32(l.start as u32)
                                    .u32(frag)
                                    .u32(frag_off)
                                    .u32(*size as u32);
                            } else {
                                header(&mut b, 9, ino, number);
                                b.u64(l.start)
                                    .u64(*size)
                                    .u64(0)
                                    .u32(links)
                                    .u32(frag)
                                    .u32(frag_off)
                                    .u32(xattr.unwrap_or(INVALID_XATTR));
                            }
                            for s in &l.blocks {
                                b.u32(*s);
                            }
                            2
                        }
                        Kind::Symlink(target) => {
                            header(&mut b, if xattr.is_some() { 10 } else { 3 }, ino, number);
                            b.u32(links).u32(target.len() as u32).bytes(target);
                            if let Some(x) = xattr {
                                b.u32(x);
                            }
                            3
                        }
                        Kind::BlockDev { major, minor } | Kind::CharDev { major, minor } => {
                            let block = matches!(i.kind, Kind::BlockDev { .. });
                            let basic = if block { 4 } else { 5 };
                            let rdev = (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12);
                            header(
                                &mut b,
                                if xattr.is_some() { basic + 7 } else { basic },
                                ino,
                                number,
                            );
                            b.u32(links).u32(rdev);
                            if let Some(x) = xattr {
                                b.u32(x);
                            }
                            basic
                        }
                        Kind::Fifo | Kind::Socket => {
                            let basic = if matches!(i.kind, Kind::Fifo) { 6 } else { 7 };
                            header(
                                &mut b,
                                if xattr.is_some() { basic + 7 } else { basic },
                                ino,
                                number,
                            );
                            b.u32(links);
                            if let Some(x) = xattr {
                                b.u32(x);
                            }
                            basic
                        }
                        // Directories take the frame path above and never get here.
                        Kind::Dir => 1,
                    };
                    let w = write_inode(b, number, basic, &mut inodes);
                    written.insert(ino, w);
                    w
                }
            };
            top.entries.push(Entry { name, w });
            continue;
        }
        // All children written: the listing, then the directory's inode.
        let Some(done) = stack.pop() else { break };
        let ino = tree.inode_of(done.node);
        let number = numbers.get(&ino).copied().unwrap_or(0);
        let parent_number = match stack.last() {
            Some(parent) => numbers
                .get(&tree.inode_of(parent.node))
                .copied()
                .unwrap_or(0),
            None => inode_count + 1,
        };
        let (listing_block, listing_offset) = dirs.pos();
        let listing = directory_listing(&done.entries);
        dirs.write(&listing);
        let file_size = listing.len() as u64 + 3;
        let xattr = xattr_of.get(&ino).copied();
        let links = nlink.get(&ino).copied().unwrap_or(2);
        let mut b = Buf::default();
        if file_size <= 0xFFFF && xattr.is_none() {
            header(&mut b, 1, ino, number);
            b.u32(listing_block)
                .u32(links)
                .u16(file_size as u16)
                .u16(listing_offset)
                .u32(parent_number);
        } else {
            header(&mut b, 8, ino, number);
            b.u32(links)
                .u32(u32::try_from(file_size).unwrap_or(u32::MAX))
                .u32(listing_block)
                .u32(parent_number)
                .u16(0)
                .u16(listing_offset)
                .u32(xattr.unwrap_or(INVALID_XATTR));
        }
        let w = write_inode(b, number, 1, &mut inodes);
        match stack.last_mut() {
            Some(parent) => parent.entries.push(Entry { name: done.name, w }),
            None => root_ref = w.reference,
        }
    }

    // 5. Tables.
    let (inode_table, _) = inodes.finish();
    let (dir_table, _) = dirs.finish();
    let inode_table_start = w.pos;
    w.write(&inode_table)?;
    let directory_table_start = w.pos;
    w.write(&dir_table)?;

    let mut frag_entries = Buf::default();
    for (start, size) in &fragments {
        frag_entries.u64(*start).u32(*size).u32(0);
    }
    let fragment_table_start = write_lookup_table(&mut w, &frag_entries.0, level)?;

    let mut export = Buf::default();
    for r in &lookup {
        export.u64(*r);
    }
    let lookup_table_start = write_lookup_table(&mut w, &export.0, level)?;

    let mut id_bytes = Buf::default();
    for id in &ids {
        id_bytes.u32(*id);
    }
    let id_table_start = write_lookup_table(&mut w, &id_bytes.0, level)?;

    let xattr_id_table_start = if xattr_sets.is_empty() {
        u64::MAX
    } else {
        let mut kv = MetaWriter::new(level);
        let mut by_id: Vec<(&XattrSet, u32)> = xattr_sets.iter().map(|(k, v)| (k, *v)).collect();
        by_id.sort_by_key(|(_, id)| *id);
        let mut id_entries = Buf::default();
        for (set, _) in &by_id {
            let (block, offset) = kv.pos();
            let mut b = Buf::default();
            let mut size = 0u32;
            for (prefix, name, value) in set.iter() {
                b.u16(*prefix)
                    .u16(name.len() as u16)
                    .bytes(name)
                    .u32(value.len() as u32)
                    .bytes(value);
                size += (name.len() + value.len()) as u32;
            }
            kv.write(&b.0);
            id_entries
                .u64((u64::from(block) << 16) | u64::from(offset))
                .u32(set.len() as u32)
                .u32(size);
        }
        let (kv_bytes, _) = kv.finish();
        let kv_start = w.pos;
        w.write(&kv_bytes)?;
        let mut ids_meta = MetaWriter::new(level);
        ids_meta.write(&id_entries.0);
        let (id_meta_bytes, starts) = ids_meta.finish();
        let id_meta_start = w.pos;
        w.write(&id_meta_bytes)?;
        let table_start = w.pos;
        let mut head = Buf::default();
        head.u64(kv_start).u32(by_id.len() as u32).u32(0);
        for s in starts {
            head.u64(id_meta_start + s);
        }
        w.write(&head.0)?;
        table_start
    };

    let bytes_used = w.pos;
    let len = bytes_used.next_multiple_of(4096);
    w.write(&vec![0u8; (len - bytes_used) as usize])?;
    w.w.flush()
        .map_err(SifError::io(out_path, "write the squashfs partition of"))?;
    drop(w);

    let mut sb = Buf::default();
    sb.bytes(b"hsqs")
        .u32(inode_count)
        .u32(clamp_u32(opts.mkfs_time))
        .u32(BLOCK_SIZE as u32)
        .u32(fragments.len() as u32)
        .u16(1)
        .u16(BLOCK_LOG)
        .u16(FLAG_ALWAYS_FRAGMENTS | FLAG_EXPORTABLE)
        .u16(ids.len() as u16)
        .u16(4)
        .u16(0)
        .u64((u64::from(root_ref.0) << 16) | u64::from(root_ref.1))
        .u64(bytes_used)
        .u64(id_table_start)
        .u64(xattr_id_table_start)
        .u64(inode_table_start)
        .u64(directory_table_start)
        .u64(fragment_table_start)
        .u64(lookup_table_start);
    out.seek(SeekFrom::Start(base))
        .and_then(|_| out.write_all(&sb.0))
        .and_then(|()| out.seek(SeekFrom::Start(base + len)).map(|_| ()))
        .map_err(SifError::io(out_path, "write the squashfs superblock of"))?;
    Ok(SquashfsSummary {
        bytes_used,
        len,
        inodes: inode_count,
        fragments: fragments.len() as u32,
        ids: ids.len(),
        data_bytes,
    })
}

/// Metadata blocks of `entries`, then the u64 index of their starts; returns the
/// index's position (what the superblock points to).
fn write_lookup_table<W: Write>(
    w: &mut Out<'_, W>,
    entries: &[u8],
    level: u32,
) -> Result<u64, SifError> {
    let mut meta = MetaWriter::new(level);
    meta.write(entries);
    let (bytes, starts) = meta.finish();
    let meta_start = w.pos;
    w.write(&bytes)?;
    let index_start = w.pos;
    let mut index = Buf::default();
    for s in starts {
        index.u64(meta_start + s);
    }
    w.write(&index.0)?;
    Ok(index_start)
}

/// A directory's listing: runs of up to 256 entries sharing an inode metadata block
/// and a base inode number (deltas fit i16), each run within one 8 KiB block's worth.
fn directory_listing(entries: &[Entry]) -> Vec<u8> {
    let mut out = Buf::default();
    let mut i = 0;
    while i < entries.len() {
        let first = &entries[i].w;
        let mut j = i;
        let mut run_bytes = 12;
        while j < entries.len() && j - i < 256 {
            let e = &entries[j];
            let delta = i64::from(e.w.number) - i64::from(first.number);
            let entry_bytes = 8 + e.name.len();
            if e.w.reference.0 != first.reference.0
                || !(-32768..=32767).contains(&delta)
                || (j > i && run_bytes + entry_bytes > METADATA_SIZE)
            {
                break;
            }
            run_bytes += entry_bytes;
            j += 1;
        }
        out.u32((j - i - 1) as u32)
            .u32(first.reference.0)
            .u32(first.number);
        for e in &entries[i..j] {
            let delta = (i64::from(e.w.number) - i64::from(first.number)) as i16;
            out.u16(e.w.reference.1)
                .u16(delta as u16)
                .u16(e.w.basic_type)
                .u16((e.name.len() - 1) as u16)
                .bytes(&e.name);
        }
        i = j;
    }
    out.0
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sif::have_tool;
    use crate::sif::tree::Inode;
    use std::os::unix::fs::MetadataExt as _;
    use std::process::Command;

    fn pseudo_random(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761).max(1);
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    /// A tree exercising every inode kind and the size boundaries.
    pub(crate) fn sample_tree() -> Tree {
        let mut t = Tree::new(1_600_000_000);
        let mk = |t: &mut Tree, parent: NodeId, name: &str, inode: Inode| {
            t.insert(parent, name.as_bytes(), inode)
        };
        let bin = mk(&mut t, ROOT, "bin", Inode::dir(0o755, 1_600_000_001));
        let mut bb = Inode::inline_file(pseudo_random(300_000, 1), 0o4755, 1_600_000_002);
        bb.uid = 0;
        let busybox = mk(&mut t, bin, "busybox", bb);
        let ino = t.inode_of(busybox);
        for name in ["sh", "ls", "cat"] {
            t.link(bin, name.as_bytes(), ino);
        }
        let data = mk(&mut t, ROOT, "data", Inode::dir(0o750, 1_600_000_003));
        let sizes = [
            0usize,
            1,
            4095,
            BLOCK_SIZE - 1,
            BLOCK_SIZE,
            BLOCK_SIZE + 10,
            3 * BLOCK_SIZE + 7,
        ];
        for (i, size) in sizes.iter().enumerate() {
            let mut bytes = vec![b'a' + i as u8; *size];
            if i % 2 == 0 {
                bytes = pseudo_random(*size, i as u32 + 7);
            }
            let mut f = Inode::inline_file(bytes, 0o644, 1_600_000_100 + i as i64);
            f.uid = 1000 + i as u32;
            f.gid = 100;
            mk(&mut t, data, &format!("f{size}"), f);
        }
        let many = mk(&mut t, ROOT, "many", Inode::dir(0o755, 0));
        for i in 0..700 {
            let name = format!("entry-with-a-longish-name-{i:04}");
            mk(
                &mut t,
                many,
                &name,
                Inode::inline_file(format!("{i}").into_bytes(), 0o600, 0),
            );
        }
        mk(&mut t, ROOT, "link", Inode::symlink(b"/bin/busybox", 0));
        mk(&mut t, ROOT, "rel", Inode::symlink(b"bin/sh", 0));
        let dev = mk(&mut t, ROOT, "dev", Inode::dir(0o755, 0));
        let mut null = Inode::dir(0o666, 0);
        null.kind = Kind::CharDev { major: 1, minor: 3 };
        mk(&mut t, dev, "null", null);
        let mut sda = Inode::dir(0o660, 0);
        sda.kind = Kind::BlockDev {
            major: 259,
            minor: 300,
        };
        mk(&mut t, dev, "nvme", sda);
        let mut fifo = Inode::dir(0o600, 0);
        fifo.kind = Kind::Fifo;
        mk(&mut t, dev, "fifo", fifo);
        let mut sock = Inode::dir(0o755, 0);
        sock.kind = Kind::Socket;
        mk(&mut t, dev, "sock", sock);
        mk(&mut t, ROOT, "tmp", Inode::dir(0o1777, 0));
        mk(&mut t, ROOT, "empty", Inode::dir(0o700, 0));
        let mut cap = Inode::inline_file(b"ping".to_vec(), 0o755, 0);
        cap.xattrs = vec![
            // cap_net_raw+ep, as `setcap` stores it (VFS cap revision 2).
            (
                b"security.capability".to_vec(),
                vec![
                    1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                ],
            ),
            (b"user.note".to_vec(), b"hello".to_vec()),
        ];
        mk(&mut t, bin, "ping", cap);
        t
    }

    pub(crate) fn write_to_vec(tree: &Tree, threads: usize) -> Vec<u8> {
        let mut cur = std::io::Cursor::new(Vec::new());
        let opts = SquashfsOptions {
            mkfs_time: 1_700_000_000,
            level: DEFAULT_LEVEL,
            threads,
        };
        let summary = write_squashfs(
            tree,
            &[],
            &mut cur,
            Path::new("t.sqfs"),
            Path::new("src"),
            &opts,
        )
        .unwrap();
        let bytes = cur.into_inner();
        assert_eq!(bytes.len() as u64, summary.len);
        assert_eq!(summary.len % 4096, 0);
        bytes
    }

    #[test]
    fn output_is_deterministic_whatever_the_thread_count() {
        let tree = sample_tree();
        let one = write_to_vec(&tree, 1);
        let two = write_to_vec(&tree, 2);
        let four = write_to_vec(&tree, 4);
        assert!(one == two && two == four);
        assert_eq!(&one[..4], b"hsqs");
    }

    #[test]
    fn unsquashfs_lists_and_extracts_what_was_written() {
        if !have_tool("unsquashfs") {
            return;
        }
        let tree = sample_tree();
        let bytes = write_to_vec(&tree, 2);
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("t.sqfs");
        std::fs::write(&img, &bytes).unwrap();

        let stat = Command::new("unsquashfs")
            .arg("-s")
            .arg(&img)
            .output()
            .unwrap();
        let stat = String::from_utf8_lossy(&stat.stdout).into_owned();
        assert!(stat.contains("gzip"), "{stat}");
        assert!(stat.contains("Block size 131072"), "{stat}");
        assert!(stat.contains("Number of inodes 722"), "{stat}");

        let ls = Command::new("unsquashfs")
            .args(["-lln", "-d", ""])
            .arg(&img)
            .output()
            .unwrap();
        assert!(
            ls.status.success(),
            "{}",
            String::from_utf8_lossy(&ls.stderr)
        );
        let ls = String::from_utf8_lossy(&ls.stdout).into_owned();
        let line = |path: &str| {
            ls.lines()
                .find(|l| l.ends_with(path) || l.contains(&format!("{path} -> ")))
                .unwrap_or_else(|| panic!("{path} not listed:\n{ls}"))
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert!(
            line("/bin/busybox").starts_with("-rwsr-xr-x 0/0 300000"),
            "{}",
            line("/bin/busybox")
        );
        assert!(line("/data/f131082").starts_with("-rw-r--r-- 1005/100 131082"));
        assert!(
            line("/dev/null").starts_with("crw-rw-rw- 0/0 1, 3"),
            "{}",
            line("/dev/null")
        );
        // (unsquashfs lists rdev >> 8 and rdev & 0xff; the extracted node is checked below)
        assert!(
            line("/dev/nvme").starts_with("brw-rw---- 0/0"),
            "{}",
            line("/dev/nvme")
        );
        assert!(line("/dev/fifo").starts_with("prw-------"));
        assert!(line("/dev/sock").starts_with("srwxr-xr-x"));
        assert!(line("/tmp").starts_with("drwxrwxrwt"));
        assert!(line("/link").ends_with("/link -> /bin/busybox"));
        assert_eq!(ls.lines().filter(|l| l.contains("/many/")).count(), 700);

        let out = dir.path().join("x");
        let ex = Command::new("unsquashfs")
            .arg("-d")
            .arg(&out)
            .arg(&img)
            .output()
            .unwrap();
        assert!(
            ex.status.success(),
            "{}",
            String::from_utf8_lossy(&ex.stderr)
        );
        for (path, node) in tree.walk() {
            if let Kind::File {
                data: Data::Inline(b),
                ..
            } = &tree.node_inode(node).kind
            {
                let got = std::fs::read(out.join(&path)).unwrap();
                assert!(got == *b, "content of {path}");
            }
        }
        let ino = |p: &str| std::fs::metadata(out.join(p)).unwrap().ino();
        assert_eq!(ino("bin/sh"), ino("bin/busybox"));
        assert_eq!(ino("bin/cat"), ino("bin/busybox"));
        assert_eq!(
            std::fs::metadata(out.join("bin/busybox")).unwrap().nlink(),
            4
        );
        assert_ne!(ino("bin/ping"), ino("bin/busybox"));
        // Linux's dev_t: major 259, minor 300 (new encoding round-tripped).
        let rdev = std::fs::symlink_metadata(out.join("dev/nvme"))
            .unwrap()
            .rdev();
        let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
        let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
        assert_eq!((major, minor), (259, 300));
        // xattrs came back (read through Python's os.getxattr, present wherever tests run).
        let script = "import os,sys; p=sys.argv[1]; print(os.getxattr(p,'user.note'), os.getxattr(p,'security.capability').hex())";
        let x = Command::new("python3")
            .args(["-c", script])
            .arg(out.join("bin/ping"))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&x.stdout).trim(),
            "b'hello' 0100000200200000000000000000000000000000",
            "{}",
            String::from_utf8_lossy(&x.stderr)
        );
    }
}
