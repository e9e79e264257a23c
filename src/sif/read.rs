//! SIF reader: the global header and the descriptor table, as typed read-only views,
//! validated so that every later read stays inside the file.
//!
//! Corrupt input (truncated, bad magic, out-of-file or overlapping objects, absurd
//! counts) is an [`SifError::InvalidSif`] naming the file and the problem: never a
//! panic, never a read outside the file, never an allocation sized by the input beyond
//! the bounded descriptor table.

use std::fmt;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::SifError;

/// `SIF_MAGIC\0`, at offset 32.
pub const MAGIC: &[u8; 10] = b"SIF_MAGIC\0";
/// The only version a loader accepts.
pub const VERSION: &[u8; 3] = b"01\0";
/// The launch script apptainer writes in the first 32 bytes.
pub const LAUNCH_SCRIPT: &[u8] = b"#!/usr/bin/env run-singularity\n";
/// Length of the global header.
pub const HEADER_LEN: u64 = 128;
/// Length of one descriptor.
pub const DESCRIPTOR_LEN: u64 = 585;
/// The group id flag: stored group ids and group links carry it.
pub const GROUP_MASK: u32 = 0xF000_0000;
/// More descriptors than this is not a SIF anyone wrote (apptainer writes 48).
const MAX_DESCRIPTORS: i64 = 4096;
/// Objects read whole into memory (deffile, JSON) are at most this long.
const MAX_OBJECT_READ: i64 = 64 << 20;

/// The kind of data an object holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataType {
    Deffile,
    EnvVar,
    Labels,
    Partition,
    Signature,
    GenericJson,
    Generic,
    CryptoMessage,
    Sbom,
    OciRootIndex,
    OciBlob,
    Other(i32),
}

impl DataType {
    #[must_use]
    pub fn from_code(code: i32) -> Self {
        match code {
            0x4001 => Self::Deffile,
            0x4002 => Self::EnvVar,
            0x4003 => Self::Labels,
            0x4004 => Self::Partition,
            0x4005 => Self::Signature,
            0x4006 => Self::GenericJson,
            0x4007 => Self::Generic,
            0x4008 => Self::CryptoMessage,
            0x4009 => Self::Sbom,
            0x400A => Self::OciRootIndex,
            0x400B => Self::OciBlob,
            other => Self::Other(other),
        }
    }

    #[must_use]
    pub fn code(self) -> i32 {
        match self {
            Self::Deffile => 0x4001,
            Self::EnvVar => 0x4002,
            Self::Labels => 0x4003,
            Self::Partition => 0x4004,
            Self::Signature => 0x4005,
            Self::GenericJson => 0x4006,
            Self::Generic => 0x4007,
            Self::CryptoMessage => 0x4008,
            Self::Sbom => 0x4009,
            Self::OciRootIndex => 0x400A,
            Self::OciBlob => 0x400B,
            Self::Other(code) => code,
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Deffile => "Def.FILE",
            Self::EnvVar => "Env.Vars",
            Self::Labels => "JSON.Labels",
            Self::Partition => "FS",
            Self::Signature => "Signature",
            Self::GenericJson => "JSON.Generic",
            Self::Generic => "Generic/Raw",
            Self::CryptoMessage => "Cryptographic Message",
            Self::Sbom => "SBOM",
            Self::OciRootIndex => "OCI.RootIndex",
            Self::OciBlob => "OCI.Blob",
            Self::Other(code) => return write!(f, "Unknown data type {code:#x}"),
        };
        f.write_str(name)
    }
}

/// The filesystem of a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsType {
    Squashfs,
    Ext3,
    ImmuObj,
    Raw,
    EncryptedSquashfs,
    GocryptfsSquashfs,
    Other(i32),
}

impl FsType {
    #[must_use]
    pub fn from_code(code: i32) -> Self {
        match code {
            1 => Self::Squashfs,
            2 => Self::Ext3,
            3 => Self::ImmuObj,
            4 => Self::Raw,
            5 => Self::EncryptedSquashfs,
            6 => Self::GocryptfsSquashfs,
            other => Self::Other(other),
        }
    }
}

impl fmt::Display for FsType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Squashfs => f.write_str("Squashfs"),
            Self::Ext3 => f.write_str("Ext3"),
            Self::ImmuObj => f.write_str("Data.Archive"),
            Self::Raw => f.write_str("Raw.Data"),
            Self::EncryptedSquashfs => f.write_str("Encrypted squashfs"),
            Self::GocryptfsSquashfs => f.write_str("Gocryptfs squashfs"),
            Self::Other(code) => write!(f, "Unknown fs type {code}"),
        }
    }
}

/// The role of a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartType {
    System,
    PrimSys,
    Data,
    Overlay,
    Other(i32),
}

impl PartType {
    #[must_use]
    pub fn from_code(code: i32) -> Self {
        match code {
            1 => Self::System,
            2 => Self::PrimSys,
            3 => Self::Data,
            4 => Self::Overlay,
            other => Self::Other(other),
        }
    }
}

impl fmt::Display for PartType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::System => f.write_str("System"),
            Self::PrimSys => f.write_str("*System"),
            Self::Data => f.write_str("Data"),
            Self::Overlay => f.write_str("Overlay"),
            Self::Other(code) => write!(f, "Unknown partition type {code}"),
        }
    }
}

/// A SIF architecture code: two ASCII digits (`"02"` = amd64).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arch(pub(crate) [u8; 2]);

const ARCHES: [&str; 14] = [
    "unknown", "386", "amd64", "arm", "arm64", "ppc64", "ppc64le", "mips", "mipsle", "mips64",
    "mips64le", "s390x", "riscv64", "loong64",
];

impl Arch {
    pub const UNKNOWN: Self = Self(*b"00");

    /// The code for a Go/OCI architecture name (`amd64`, `arm64`, …); unknown names give
    /// [`Arch::UNKNOWN`], which apptainer does not check against the host.
    #[must_use]
    pub fn from_go_name(name: &str) -> Self {
        ARCHES
            .iter()
            .position(|a| *a == name)
            .and_then(|i| u8::try_from(i).ok())
            .map_or(Self::UNKNOWN, |i| Self([b'0' + i / 10, b'0' + i % 10]))
    }

    /// The two-digit code.
    #[must_use]
    pub fn code(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    /// The Go name (`amd64`), or `unknown`.
    #[must_use]
    pub fn go_name(&self) -> &'static str {
        let n = usize::from(self.0[0].wrapping_sub(b'0')) * 10
            + usize::from(self.0[1].wrapping_sub(b'0'));
        ARCHES.get(n).copied().unwrap_or("unknown")
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.go_name())
    }
}

/// A UUID in RFC-4122 byte order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Uuid(pub [u8; 16]);

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The 128-byte global header as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawHeader {
    pub(crate) launch: [u8; 32],
    pub(crate) magic: [u8; 10],
    pub(crate) version: [u8; 3],
    pub(crate) arch: [u8; 3],
    pub(crate) uuid: [u8; 16],
    pub(crate) ctime: i64,
    pub(crate) mtime: i64,
    pub(crate) dfree: i64,
    pub(crate) dtotal: i64,
    pub(crate) doffset: i64,
    pub(crate) dsize: i64,
    pub(crate) data_offset: i64,
    pub(crate) data_size: i64,
}

/// Little-endian field reader over a fixed buffer (lengths are checked by the callers'
/// fixed-size arrays, so every read is in bounds).
struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(src) = self.buf.get(self.pos..self.pos + N) {
            out.copy_from_slice(src);
        }
        self.pos += N;
        out
    }
    fn i64(&mut self) -> i64 {
        i64::from_le_bytes(self.bytes())
    }
    fn i32(&mut self) -> i32 {
        i32::from_le_bytes(self.bytes())
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes())
    }
}

impl RawHeader {
    pub(crate) fn parse(buf: &[u8; HEADER_LEN as usize]) -> Self {
        let mut f = Fields::new(buf);
        Self {
            launch: f.bytes(),
            magic: f.bytes(),
            version: f.bytes(),
            arch: f.bytes(),
            uuid: f.bytes(),
            ctime: f.i64(),
            mtime: f.i64(),
            dfree: f.i64(),
            dtotal: f.i64(),
            doffset: f.i64(),
            dsize: f.i64(),
            data_offset: f.i64(),
            data_size: f.i64(),
        }
    }

    pub(crate) fn encode(&self) -> [u8; HEADER_LEN as usize] {
        let mut out = Vec::with_capacity(HEADER_LEN as usize);
        out.extend_from_slice(&self.launch);
        out.extend_from_slice(&self.magic);
        out.extend_from_slice(&self.version);
        out.extend_from_slice(&self.arch);
        out.extend_from_slice(&self.uuid);
        for v in [
            self.ctime,
            self.mtime,
            self.dfree,
            self.dtotal,
            self.doffset,
            self.dsize,
            self.data_offset,
            self.data_size,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        let mut buf = [0u8; HEADER_LEN as usize];
        buf.copy_from_slice(&out);
        buf
    }
}

/// One 585-byte descriptor as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawDescriptor {
    pub(crate) data_type: i32,
    pub(crate) used: u8,
    pub(crate) id: u32,
    pub(crate) group: u32,
    pub(crate) link: u32,
    pub(crate) offset: i64,
    pub(crate) size: i64,
    pub(crate) size_with_padding: i64,
    pub(crate) ctime: i64,
    pub(crate) mtime: i64,
    pub(crate) uid: i64,
    pub(crate) gid: i64,
    pub(crate) name: [u8; 128],
    pub(crate) extra: [u8; 384],
}

impl RawDescriptor {
    pub(crate) fn parse(buf: &[u8]) -> Self {
        let mut f = Fields::new(buf);
        Self {
            data_type: f.i32(),
            used: f.bytes::<1>()[0],
            id: f.u32(),
            group: f.u32(),
            link: f.u32(),
            offset: f.i64(),
            size: f.i64(),
            size_with_padding: f.i64(),
            ctime: f.i64(),
            mtime: f.i64(),
            uid: f.i64(),
            gid: f.i64(),
            name: f.bytes(),
            extra: f.bytes(),
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(DESCRIPTOR_LEN as usize);
        out.extend_from_slice(&self.data_type.to_le_bytes());
        out.push(self.used);
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&self.group.to_le_bytes());
        out.extend_from_slice(&self.link.to_le_bytes());
        for v in [
            self.offset,
            self.size,
            self.size_with_padding,
            self.ctime,
            self.mtime,
            self.uid,
            self.gid,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.name);
        out.extend_from_slice(&self.extra);
        out
    }
}

/// What a descriptor links to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    None,
    Object(u32),
    Group(u32),
}

/// The partition metadata of a Partition descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    pub fs_type: FsType,
    pub part_type: PartType,
    pub arch: Arch,
}

/// A used descriptor: a typed read-only view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    raw: RawDescriptor,
}

impl Descriptor {
    #[must_use]
    pub fn data_type(&self) -> DataType {
        DataType::from_code(self.raw.data_type)
    }
    /// Object id (table index + 1).
    #[must_use]
    pub fn id(&self) -> u32 {
        self.raw.id
    }
    /// Group id without the `0xF0000000` flag; `None` for "no group".
    #[must_use]
    pub fn group_id(&self) -> Option<u32> {
        match self.raw.group & !GROUP_MASK {
            0 => None,
            g => Some(g),
        }
    }
    #[must_use]
    pub fn link(&self) -> Link {
        match self.raw.link {
            0 => Link::None,
            l if l & GROUP_MASK == GROUP_MASK => Link::Group(l & !GROUP_MASK),
            l => Link::Object(l),
        }
    }
    /// Absolute offset of the object in the file.
    #[must_use]
    pub fn offset(&self) -> u64 {
        self.raw.offset.unsigned_abs()
    }
    #[must_use]
    pub fn size(&self) -> u64 {
        self.raw.size.unsigned_abs()
    }
    /// Alignment gap before the object plus its size.
    #[must_use]
    pub fn size_with_padding(&self) -> u64 {
        self.raw.size_with_padding.unsigned_abs()
    }
    #[must_use]
    pub fn ctime(&self) -> i64 {
        self.raw.ctime
    }
    #[must_use]
    pub fn mtime(&self) -> i64 {
        self.raw.mtime
    }
    /// Deprecated owner fields (old Singularity wrote the builder's ids).
    #[must_use]
    pub fn uid(&self) -> i64 {
        self.raw.uid
    }
    #[must_use]
    pub fn gid(&self) -> i64 {
        self.raw.gid
    }
    /// The name up to its first NUL (lossy UTF-8).
    #[must_use]
    pub fn name(&self) -> String {
        c_string(&self.raw.name)
    }
    /// Partition metadata, for Partition descriptors.
    #[must_use]
    pub fn partition(&self) -> Option<PartitionInfo> {
        if self.data_type() != DataType::Partition {
            return None;
        }
        let mut f = Fields::new(&self.raw.extra);
        let fs_type = FsType::from_code(f.i32());
        let part_type = PartType::from_code(f.i32());
        let arch: [u8; 3] = f.bytes();
        Some(PartitionInfo {
            fs_type,
            part_type,
            arch: Arch([arch[0], arch[1]]),
        })
    }
    /// Hash type and the 20-byte PGP fingerprint, for Signature descriptors.
    #[must_use]
    pub fn signature(&self) -> Option<(i32, [u8; 20])> {
        if self.data_type() != DataType::Signature {
            return None;
        }
        let mut f = Fields::new(&self.raw.extra);
        Some((f.i32(), f.bytes()))
    }
    fn end(&self) -> u64 {
        self.offset().saturating_add(self.size())
    }
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// A parsed and validated SIF: header and used descriptors.
#[derive(Clone, Debug)]
pub struct Sif {
    path: PathBuf,
    file_len: u64,
    header: RawHeader,
    descriptors: Vec<Descriptor>,
    /// Unused table entries that are not all zero (tolerated on read, refused by
    /// [`Sif::verify_layout`]).
    dirty_unused: usize,
    primary: usize,
}

impl Sif {
    /// Opens and validates `path`.
    pub fn open(path: &Path) -> Result<Self, SifError> {
        let mut file = std::fs::File::open(path).map_err(SifError::io(path, "open the SIF"))?;
        let len = file
            .metadata()
            .map_err(SifError::io(path, "stat the SIF"))?
            .len();
        Self::parse(&mut file, len, path)
    }

    /// Parses the SIF in `reader` (`file_len` bytes long); `path` names it in errors.
    pub fn parse<R: Read + Seek>(
        reader: &mut R,
        file_len: u64,
        path: &Path,
    ) -> Result<Self, SifError> {
        let invalid = |problem: String| SifError::InvalidSif {
            file: path.to_path_buf(),
            problem,
        };
        if file_len < HEADER_LEN {
            return Err(invalid(format!(
                "truncated: {file_len} bytes, shorter than the {HEADER_LEN}-byte header"
            )));
        }
        let mut hbuf = [0u8; HEADER_LEN as usize];
        read_at(reader, 0, &mut hbuf, path)?;
        let header = RawHeader::parse(&hbuf);
        if &header.magic != MAGIC {
            return Err(invalid(format!(
                "bad magic {:?} at offset 32 (expected `SIF_MAGIC`)",
                String::from_utf8_lossy(&header.magic)
            )));
        }
        if &header.version != VERSION {
            return Err(invalid(format!(
                "unsupported version {:?} (expected `01`)",
                String::from_utf8_lossy(&header.version)
            )));
        }
        if header.dtotal <= 0 || header.dtotal > MAX_DESCRIPTORS {
            return Err(invalid(format!(
                "descriptor count {} is not in 1..={MAX_DESCRIPTORS}",
                header.dtotal
            )));
        }
        if header.dfree < 0 || header.dfree > header.dtotal {
            return Err(invalid(format!(
                "free descriptor count {} is not in 0..={}",
                header.dfree, header.dtotal
            )));
        }
        let table_len = header.dtotal * DESCRIPTOR_LEN as i64;
        if header.dsize != table_len {
            return Err(invalid(format!(
                "descriptor table size {} is not {} × {DESCRIPTOR_LEN}",
                header.dsize, header.dtotal
            )));
        }
        let within = |off: i64, len: i64| -> bool {
            off >= 0
                && len >= 0
                && off
                    .checked_add(len)
                    .is_some_and(|end| end.unsigned_abs() <= file_len)
        };
        if header.doffset < HEADER_LEN as i64 || !within(header.doffset, header.dsize) {
            return Err(invalid(format!(
                "descriptor table ({} bytes at offset {}) is not inside the {file_len}-byte file after the header",
                header.dsize, header.doffset
            )));
        }
        let table_end = header.doffset + header.dsize;
        if !within(header.data_offset, header.data_size) {
            return Err(invalid(format!(
                "data area ({} bytes at offset {}) is not inside the {file_len}-byte file",
                header.data_size, header.data_offset
            )));
        }
        // Bounded: at most MAX_DESCRIPTORS × 585 bytes.
        let mut table = vec![0u8; table_len.unsigned_abs() as usize];
        read_at(reader, header.doffset.unsigned_abs(), &mut table, path)?;
        let mut descriptors = Vec::new();
        let mut dirty_unused = 0;
        for (index, chunk) in table.chunks_exact(DESCRIPTOR_LEN as usize).enumerate() {
            let raw = RawDescriptor::parse(chunk);
            match raw.used {
                0 => {
                    if chunk.iter().any(|b| *b != 0) {
                        dirty_unused += 1;
                    }
                    continue;
                }
                1 => {}
                other => {
                    return Err(invalid(format!(
                        "descriptor {index}: `used` is {other}, not 0 or 1"
                    )))
                }
            }
            let expected = u32::try_from(index + 1).unwrap_or(u32::MAX);
            if raw.id != expected {
                return Err(invalid(format!(
                    "descriptor {index}: object id {} is not its position {expected}",
                    raw.id
                )));
            }
            if !within(raw.offset, raw.size) {
                return Err(invalid(format!(
                    "object {} ({} bytes at offset {}) is not inside the {file_len}-byte file",
                    raw.id, raw.size, raw.offset
                )));
            }
            if raw.size > 0 && raw.offset < table_end {
                return Err(invalid(format!(
                    "object {} at offset {} overlaps the header or descriptor table (ending at {table_end})",
                    raw.id, raw.offset
                )));
            }
            if raw.size_with_padding < raw.size {
                return Err(invalid(format!(
                    "object {}: size with padding {} is smaller than its size {}",
                    raw.id, raw.size_with_padding, raw.size
                )));
            }
            descriptors.push(Descriptor { raw });
        }
        let used = descriptors.len() as i64;
        if header.dtotal - header.dfree != used {
            log::debug!(
                "`{}`: header says {} free descriptors, the table has {}",
                path.display(),
                header.dfree,
                header.dtotal - used
            );
        }
        let mut by_offset: Vec<&Descriptor> = descriptors.iter().filter(|d| d.size() > 0).collect();
        by_offset.sort_by_key(|d| d.offset());
        for pair in by_offset.windows(2) {
            if pair[0].end() > pair[1].offset() {
                return Err(invalid(format!(
                    "objects {} and {} overlap (offsets {}+{} and {})",
                    pair[0].id(),
                    pair[1].id(),
                    pair[0].offset(),
                    pair[0].size(),
                    pair[1].offset()
                )));
            }
        }
        let primaries: Vec<usize> = descriptors
            .iter()
            .enumerate()
            .filter(|(_, d)| {
                d.partition()
                    .is_some_and(|p| p.part_type == PartType::PrimSys)
            })
            .map(|(i, _)| i)
            .collect();
        let primary = match primaries.as_slice() {
            [one] => *one,
            [] => return Err(invalid("no primary (PrimSys) partition".into())),
            many => {
                return Err(invalid(format!(
                    "{} primary (PrimSys) partitions; exactly one is allowed",
                    many.len()
                )))
            }
        };
        let part = &descriptors[primary];
        let info = part.partition().unwrap_or(PartitionInfo {
            fs_type: FsType::Other(0),
            part_type: PartType::Other(0),
            arch: Arch::UNKNOWN,
        });
        if info.fs_type != FsType::Squashfs {
            return Err(invalid(format!(
                "the primary partition is {}, not squashfs",
                info.fs_type
            )));
        }
        if header.arch[..2] != info.arch.0 {
            return Err(invalid(format!(
                "header arch `{}` differs from the primary partition's `{}`",
                String::from_utf8_lossy(&header.arch[..2]),
                info.arch.code()
            )));
        }
        let mut magic = [0u8; 4];
        if part.size() < 96 {
            return Err(invalid(format!(
                "the primary partition is {} bytes, too short for a squashfs superblock",
                part.size()
            )));
        }
        read_at(reader, part.offset(), &mut magic, path)?;
        if &magic != b"hsqs" {
            return Err(invalid(format!(
                "the primary partition at offset {} does not start with `hsqs`",
                part.offset()
            )));
        }
        Ok(Self {
            path: path.to_path_buf(),
            file_len,
            header,
            descriptors,
            dirty_unused,
            primary,
        })
    }

    /// The file this was read from.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
    #[must_use]
    pub fn file_len(&self) -> u64 {
        self.file_len
    }
    /// The launch script (up to the first NUL).
    #[must_use]
    pub fn launch_script(&self) -> String {
        c_string(&self.header.launch)
    }
    #[must_use]
    pub fn arch(&self) -> Arch {
        Arch([self.header.arch[0], self.header.arch[1]])
    }
    #[must_use]
    pub fn uuid(&self) -> Uuid {
        Uuid(self.header.uuid)
    }
    #[must_use]
    pub fn ctime(&self) -> i64 {
        self.header.ctime
    }
    #[must_use]
    pub fn mtime(&self) -> i64 {
        self.header.mtime
    }
    #[must_use]
    pub fn descriptors_free(&self) -> i64 {
        self.header.dfree
    }
    #[must_use]
    pub fn descriptors_total(&self) -> i64 {
        self.header.dtotal
    }
    #[must_use]
    pub fn descriptors_offset(&self) -> i64 {
        self.header.doffset
    }
    #[must_use]
    pub fn descriptors_size(&self) -> i64 {
        self.header.dsize
    }
    #[must_use]
    pub fn data_offset(&self) -> i64 {
        self.header.data_offset
    }
    #[must_use]
    pub fn data_size(&self) -> i64 {
        self.header.data_size
    }
    /// The used descriptors, in table order.
    #[must_use]
    pub fn descriptors(&self) -> &[Descriptor] {
        &self.descriptors
    }
    /// The primary (PrimSys squashfs) partition; validation guarantees exactly one.
    #[must_use]
    pub fn primary_partition(&self) -> &Descriptor {
        &self.descriptors[self.primary]
    }
    /// The first object of `data_type` named `name` (`None` matches any name).
    #[must_use]
    pub fn find(&self, data_type: DataType, name: Option<&str>) -> Option<&Descriptor> {
        self.descriptors
            .iter()
            .find(|d| d.data_type() == data_type && name.is_none_or(|n| d.name() == n))
    }

    /// Reads the whole object `d` (at most 64 MiB: meant for deffiles and JSON).
    pub fn read_object<R: Read + Seek>(
        &self,
        reader: &mut R,
        d: &Descriptor,
    ) -> Result<Vec<u8>, SifError> {
        if d.raw.size > MAX_OBJECT_READ {
            return Err(SifError::InvalidSif {
                file: self.path.clone(),
                problem: format!(
                    "object {} is {} bytes, too large to read into memory",
                    d.id(),
                    d.size()
                ),
            });
        }
        let mut buf = vec![0u8; d.size() as usize];
        read_at(reader, d.offset(), &mut buf, &self.path)?;
        Ok(buf)
    }

    /// The stricter checks every SIF this crate writes passes (spec §5.1): data offset +
    /// data size = file length, free = total − used, unused descriptors all zero, group 1,
    /// a 4096-aligned partition whose squashfs is gzip with 128 KiB blocks and fits.
    pub fn verify_layout<R: Read + Seek>(&self, reader: &mut R) -> Result<(), SifError> {
        let invalid = |problem: String| SifError::InvalidSif {
            file: self.path.clone(),
            problem,
        };
        let h = &self.header;
        if h.data_offset.unsigned_abs() + h.data_size.unsigned_abs() != self.file_len {
            return Err(invalid(format!(
                "data offset {} + data size {} is not the file length {}",
                h.data_offset, h.data_size, self.file_len
            )));
        }
        if h.dtotal - h.dfree != self.descriptors.len() as i64 {
            return Err(invalid(format!(
                "{} free descriptors of {}, but {} are used",
                h.dfree,
                h.dtotal,
                self.descriptors.len()
            )));
        }
        if self.dirty_unused > 0 {
            return Err(invalid(format!(
                "{} unused descriptors are not all zero",
                self.dirty_unused
            )));
        }
        for d in &self.descriptors {
            if d.offset() < h.data_offset.unsigned_abs() {
                return Err(invalid(format!(
                    "object {} starts before the data offset",
                    d.id()
                )));
            }
        }
        let part = self.primary_partition();
        if part.offset() % 4096 != 0 {
            return Err(invalid(format!(
                "partition offset {} is not a multiple of 4096",
                part.offset()
            )));
        }
        let mut sb = [0u8; 96];
        read_at(reader, part.offset(), &mut sb, &self.path)?;
        let u16_at = |o: usize| u16::from_le_bytes([sb[o], sb[o + 1]]);
        let compression = u16_at(20);
        let block_log = u16_at(22);
        let (major, minor) = (u16_at(28), u16_at(30));
        let mut bu = [0u8; 8];
        bu.copy_from_slice(&sb[40..48]);
        let bytes_used = u64::from_le_bytes(bu);
        if (major, minor) != (4, 0) {
            return Err(invalid(format!(
                "squashfs version {major}.{minor}, not 4.0"
            )));
        }
        if compression != 1 {
            return Err(invalid(format!(
                "squashfs compression id {compression}, not 1 (gzip)"
            )));
        }
        if block_log != 17 {
            return Err(invalid(format!(
                "squashfs block log {block_log}, not 17 (128 KiB)"
            )));
        }
        if bytes_used > part.size() {
            return Err(invalid(format!(
                "squashfs bytes_used {bytes_used} exceeds the partition size {}",
                part.size()
            )));
        }
        Ok(())
    }
}

fn read_at<R: Read + Seek>(
    reader: &mut R,
    offset: u64,
    buf: &mut [u8],
    path: &Path,
) -> Result<(), SifError> {
    reader
        .seek(SeekFrom::Start(offset))
        .and_then(|_| reader.read_exact(buf))
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                SifError::InvalidSif {
                    file: path.to_path_buf(),
                    problem: format!(
                        "truncated: {} bytes at offset {offset} are past its end",
                        buf.len()
                    ),
                }
            } else {
                SifError::Io {
                    path: path.to_path_buf(),
                    step: "read",
                    source: e,
                }
            }
        })
}

/// What `inspect` shows: the header, the objects and the traceability labels.
#[derive(Clone, Debug)]
pub struct SifInspection {
    pub sif: Sif,
    /// The definition file (empty when the SIF has none).
    pub deffile: String,
    /// Labels from `inspect-metadata.json` (the image's own labels plus the source
    /// image, digest, model group and zoo commit); empty when the SIF has none.
    pub labels: std::collections::BTreeMap<String, String>,
    /// The image config's `config` member (`oci-config.json`), when present.
    pub oci_config: Option<serde_json::Value>,
}

impl SifInspection {
    /// Opens `path` and reads its metadata objects.
    pub fn open(path: &Path) -> Result<Self, SifError> {
        let mut file = std::fs::File::open(path).map_err(SifError::io(path, "open the SIF"))?;
        let len = file
            .metadata()
            .map_err(SifError::io(path, "stat the SIF"))?
            .len();
        let sif = Sif::parse(&mut file, len, path)?;
        let deffile = match sif.find(DataType::Deffile, None) {
            Some(d) => String::from_utf8_lossy(&sif.read_object(&mut file, d)?).into_owned(),
            None => String::new(),
        };
        let json =
            |name: &str, file: &mut std::fs::File| -> Result<Option<serde_json::Value>, SifError> {
                match sif.find(DataType::GenericJson, Some(name)) {
                    Some(d) => {
                        let bytes = sif.read_object(file, d)?;
                        serde_json::from_slice(&bytes)
                            .map(Some)
                            .map_err(|e| SifError::InvalidSif {
                                file: path.to_path_buf(),
                                problem: format!("object `{name}` is not JSON ({e})"),
                            })
                    }
                    None => Ok(None),
                }
            };
        let metadata = json("inspect-metadata.json", &mut file)?;
        let oci_config = json("oci-config.json", &mut file)?;
        let labels = metadata
            .as_ref()
            .and_then(|m| m.pointer("/data/attributes/labels"))
            .and_then(serde_json::Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                        (k.clone(), v)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            sif,
            deffile,
            labels,
            oci_config,
        })
    }
}

/// Opens `path`, validates it and runs the layout checks of [`Sif::verify_layout`].
pub fn verify(path: &Path) -> Result<Sif, SifError> {
    let mut file = std::fs::File::open(path).map_err(SifError::io(path, "open the SIF"))?;
    let len = file
        .metadata()
        .map_err(SifError::io(path, "stat the SIF"))?
        .len();
    let sif = Sif::parse(&mut file, len, path)?;
    sif.verify_layout(&mut file)?;
    Ok(sif)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn fixture(name: &str) -> PathBuf {
        crate::sif::shared_dir().join("fixtures/sif").join(name)
    }

    struct Expected {
        name: &'static str,
        file_len: u64,
        uuid: &'static str,
        time: i64,
        data_size: i64,
        deffile_size: u64,
        partition_size: u64,
        uid: i64,
        gid: i64,
    }

    #[test]
    fn fixtures_read_to_the_spec_values() {
        let cases = [
            Expected {
                name: "busybox_1.34.1.sif",
                file_len: 794_624,
                uuid: "51038e5c-c2f0-4025-bdc0-d987c3a43663",
                time: 1_637_837_079,
                data_size: 761_856,
                deffile_size: 40,
                partition_size: 753_664,
                uid: 381_589,
                gid: 37_765,
            },
            Expected {
                name: "tiny-container_latest.sif",
                file_len: 782_336,
                uuid: "2e783fad-db79-429b-820b-f2bbf46c285d",
                time: 1_563_209_720,
                data_size: 749_568,
                deffile_size: 95,
                partition_size: 741_376,
                uid: 0,
                gid: 0,
            },
        ];
        for e in cases {
            let sif = Sif::open(&fixture(e.name)).unwrap();
            assert_eq!(sif.file_len(), e.file_len, "{}", e.name);
            assert_eq!(sif.arch().code(), "02");
            assert_eq!(sif.arch().to_string(), "amd64");
            assert_eq!(sif.uuid().to_string(), e.uuid, "{}", e.name);
            assert_eq!((sif.ctime(), sif.mtime()), (e.time, e.time));
            assert_eq!(
                (
                    sif.descriptors_free(),
                    sif.descriptors_total(),
                    sif.descriptors_offset(),
                    sif.descriptors_size()
                ),
                (45, 48, 4096, 28080)
            );
            assert_eq!((sif.data_offset(), sif.data_size()), (32768, e.data_size));
            assert_eq!(sif.launch_script(), "#!/usr/bin/env run-singularity\n");
            let d = sif.descriptors();
            assert_eq!(d.len(), 3);
            let types: Vec<_> = d.iter().map(Descriptor::data_type).collect();
            assert_eq!(
                types,
                [
                    DataType::Deffile,
                    DataType::GenericJson,
                    DataType::Partition
                ]
            );
            assert_eq!(d.iter().map(Descriptor::id).collect::<Vec<_>>(), [1, 2, 3]);
            for x in d {
                assert_eq!(x.group_id(), Some(1));
                assert_eq!(x.link(), Link::None);
                assert_eq!((x.ctime(), x.mtime()), (e.time, e.time));
                assert_eq!((x.uid(), x.gid()), (e.uid, e.gid));
            }
            assert_eq!((d[0].offset(), d[0].size()), (32768, e.deffile_size));
            assert_eq!(d[0].name(), ".");
            assert_eq!(
                (d[1].offset(), d[1].size(), d[1].size_with_padding()),
                (36864, 90, 4096 - e.deffile_size + 90)
            );
            assert_eq!(d[1].name(), "oci-config.json");
            assert_eq!((d[2].offset(), d[2].size()), (40960, e.partition_size));
            assert_eq!(d[2].size_with_padding(), e.partition_size + 4006);
            assert!(d[2].name().starts_with("squashfs-"), "{}", d[2].name());
            assert_eq!(
                d[2].partition(),
                Some(PartitionInfo {
                    fs_type: FsType::Squashfs,
                    part_type: PartType::PrimSys,
                    arch: Arch(*b"02")
                })
            );
            assert_eq!(sif.primary_partition().id(), 3);
            assert_eq!(d[2].offset() + d[2].size(), e.file_len);
            // Old Singularity SIFs pass the layout checks too (bar the data offset).
            let mut f = std::fs::File::open(fixture(e.name)).unwrap();
            sif.verify_layout(&mut f).unwrap();
        }
        let busybox = SifInspection::open(&fixture("busybox_1.34.1.sif")).unwrap();
        assert_eq!(
            busybox.deffile,
            "bootstrap: docker\nfrom: busybox:1.34.1\n\n"
        );
        assert_eq!(
            busybox.oci_config.unwrap()["Cmd"],
            serde_json::json!(["sh"])
        );
        assert!(busybox.labels.is_empty());
    }

    fn busybox_bytes() -> Vec<u8> {
        std::fs::read(fixture("busybox_1.34.1.sif")).unwrap()
    }

    fn parse(bytes: &[u8]) -> Result<Sif, SifError> {
        Sif::parse(
            &mut Cursor::new(bytes),
            bytes.len() as u64,
            Path::new("x.sif"),
        )
    }

    fn problem(bytes: &[u8]) -> String {
        let e = parse(bytes).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("`x.sif` is not a valid SIF: "), "{text}");
        text
    }

    fn set_i64(bytes: &mut [u8], at: usize, v: i64) {
        bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    #[test]
    fn corrupt_input_names_the_problem() {
        let good = busybox_bytes();
        let desc = |i: usize| 4096 + i * 585;
        type Mutation = Box<dyn Fn(&mut Vec<u8>)>;
        let cases: Vec<(&str, Mutation, &str)> = vec![
            (
                "truncated header",
                Box::new(|b| b.truncate(100)),
                "truncated",
            ),
            ("bad magic", Box::new(|b| b[32] = b'X'), "bad magic"),
            (
                "bad version",
                Box::new(|b| b[43] = b'2'),
                "unsupported version",
            ),
            (
                "absurd count",
                Box::new(|b| set_i64(b, 88, 1 << 40)),
                "descriptor count",
            ),
            (
                "table size mismatch",
                Box::new(|b| set_i64(b, 104, 100)),
                "descriptor table size",
            ),
            (
                "table past the end",
                Box::new(|b| set_i64(b, 96, 790_000)),
                "descriptor table",
            ),
            (
                "object past the end",
                Box::new(move |b| set_i64(b, desc(2) + 25, 10_000_000)),
                "not inside",
            ),
            (
                "negative offset",
                Box::new(move |b| set_i64(b, desc(0) + 17, -5)),
                "not inside",
            ),
            (
                "overlapping objects",
                Box::new(move |b| set_i64(b, desc(1) + 17, 32770)),
                "overlap",
            ),
            (
                "object inside the table",
                Box::new(move |b| set_i64(b, desc(0) + 17, 5000)),
                "overlaps the header",
            ),
            (
                "wrong id",
                Box::new(move |b| b[desc(1) + 5] = 9),
                "object id 9",
            ),
            (
                "no partition",
                Box::new(move |b| b[desc(2) + 201 + 4] = 3),
                "no primary",
            ),
            (
                "arch mismatch",
                Box::new(|b| b[46] = b'4'),
                "differs from the primary",
            ),
            (
                "not squashfs",
                Box::new(|b| b[40960] = b'x'),
                "does not start with `hsqs`",
            ),
            (
                "truncated file",
                Box::new(|b| b.truncate(40000)),
                "not inside",
            ),
        ];
        for (name, mutate, expected) in cases {
            let mut bytes = good.clone();
            mutate(&mut bytes);
            let text = problem(&bytes);
            assert!(text.contains(expected), "{name}: {text}");
        }
        // Two primary partitions.
        let mut two = good.clone();
        let copy = two[desc(2)..desc(3)].to_vec();
        two[desc(3)..desc(4)].copy_from_slice(&copy);
        two[desc(3) + 5] = 4;
        set_i64(&mut two, desc(3) + 25, 0);
        assert!(problem(&two).contains("2 primary"), "{}", problem(&two));
    }

    #[test]
    fn missing_file_names_it() {
        let e = Sif::open(Path::new("/nonexistent-kc/x.sif")).unwrap_err();
        assert!(e.to_string().contains("`/nonexistent-kc/x.sif`"), "{e}");
    }

    #[test]
    fn arch_names_round_trip() {
        assert_eq!(Arch::from_go_name("amd64").code(), "02");
        assert_eq!(Arch::from_go_name("arm64").code(), "04");
        assert_eq!(Arch::from_go_name("loong64").code(), "13");
        assert_eq!(Arch::from_go_name("sparc"), Arch::UNKNOWN);
        assert_eq!(Arch(*b"11").to_string(), "s390x");
        assert_eq!(Arch(*b"9x").to_string(), "unknown");
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(400))]

            #[test]
            fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..70_000)) {
                let _ = parse(&bytes);
            }

            #[test]
            fn mutated_fixture_never_panics(
                edits in proptest::collection::vec((0usize..40_960, any::<u8>()), 1..40),
                cut in proptest::option::of(0usize..794_624),
            ) {
                let mut bytes = busybox_bytes();
                for (at, v) in edits {
                    bytes[at] = v;
                }
                if let Some(cut) = cut {
                    bytes.truncate(cut);
                }
                if let Ok(sif) = parse(&bytes) {
                    let mut c = Cursor::new(&bytes);
                    for d in sif.descriptors() {
                        prop_assert!(d.offset() + d.size() <= bytes.len() as u64);
                        if d.size() < 1 << 20 {
                            let _ = sif.read_object(&mut c, d);
                        }
                    }
                    let _ = sif.verify_layout(&mut c);
                }
            }
        }
    }
}
