//! SIF writer: the v2 layout apptainer ≥ 1.0 writes (header, 48 descriptors, data at
//! 32176; deffile and JSON objects unaligned, the squashfs partition aligned to 4096).
//!
//! The partition is large and streamed, so writing is two-step: [`SifBuilder::partition_offset`]
//! says where the caller writes the squashfs, then [`SifBuilder::write_metadata`] writes
//! the header, the descriptor table and the small objects before it.

use std::io::{Seek, SeekFrom, Write};

use super::read::{
    Arch, DataType, RawDescriptor, RawHeader, Uuid, DESCRIPTOR_LEN, GROUP_MASK, LAUNCH_SCRIPT,
    MAGIC, VERSION,
};

/// Descriptor capacity apptainer gives a new SIF.
pub const DESCRIPTORS: i64 = 48;
/// Where the descriptor table starts.
pub const DESCRIPTORS_OFFSET: i64 = 4096;
/// Where data starts: right after the table (4096 + 48 × 585).
pub const DATA_OFFSET: u64 = DESCRIPTORS_OFFSET as u64 + DESCRIPTORS as u64 * DESCRIPTOR_LEN;
/// Partition alignment.
pub const PARTITION_ALIGN: u64 = 4096;

/// The objects of a SIF to write, in apptainer's order: deffile, JSON objects (sorted by
/// name, as apptainer does), then the primary squashfs partition.
#[derive(Clone, Debug)]
pub struct SifBuilder {
    uuid: Uuid,
    time: i64,
    arch: Arch,
    deffile: Vec<u8>,
    json: Vec<(String, Vec<u8>)>,
}

impl SifBuilder {
    /// A SIF with `uuid`, every timestamp `time` (Unix seconds) and partition arch `arch`.
    #[must_use]
    pub fn new(uuid: Uuid, time: i64, arch: Arch) -> Self {
        Self {
            uuid,
            time,
            arch,
            deffile: Vec::new(),
            json: Vec::new(),
        }
    }

    /// Sets the definition file object.
    #[must_use]
    pub fn deffile(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.deffile = bytes.into();
        self
    }

    /// Adds a GenericJSON object (kept sorted by name).
    #[must_use]
    pub fn json(mut self, name: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.json.push((name.to_owned(), bytes.into()));
        self.json.sort_by(|a, b| a.0.cmp(&b.0));
        self
    }

    fn small_objects(&self) -> Vec<(DataType, &str, &[u8])> {
        let mut out = Vec::new();
        if !self.deffile.is_empty() {
            out.push((DataType::Deffile, "", self.deffile.as_slice()));
        }
        for (name, bytes) in &self.json {
            out.push((DataType::GenericJson, name.as_str(), bytes.as_slice()));
        }
        out
    }

    fn small_end(&self) -> u64 {
        DATA_OFFSET
            + self
                .small_objects()
                .iter()
                .map(|(_, _, b)| b.len() as u64)
                .sum::<u64>()
    }

    /// Where the squashfs partition starts (4096-aligned, after the small objects).
    #[must_use]
    pub fn partition_offset(&self) -> u64 {
        self.small_end().next_multiple_of(PARTITION_ALIGN)
    }

    /// Writes the header, the descriptor table and the small objects, and pads up to the
    /// partition, which the caller has written (or will write) at [`Self::partition_offset`],
    /// `partition_len` bytes long. The file then ends at the partition's end.
    pub fn write_metadata<W: Write + Seek>(
        &self,
        w: &mut W,
        partition_len: u64,
    ) -> std::io::Result<()> {
        let objects = self.small_objects();
        let mut descriptors = Vec::new();
        let mut pos = DATA_OFFSET;
        let descriptor = |id: usize, dtype: DataType, name: &str, offset: u64, size: u64, gap| {
            let mut raw_name = [0u8; 128];
            let n = name.len().min(127);
            raw_name[..n].copy_from_slice(&name.as_bytes()[..n]);
            RawDescriptor {
                data_type: dtype.code(),
                used: 1,
                id: u32::try_from(id).unwrap_or(u32::MAX),
                group: GROUP_MASK | 1,
                link: 0,
                offset: offset as i64,
                size: size as i64,
                size_with_padding: (gap + size) as i64,
                ctime: self.time,
                mtime: self.time,
                uid: 0,
                gid: 0,
                name: raw_name,
                extra: [0u8; 384],
            }
        };
        for (i, (dtype, name, bytes)) in objects.iter().enumerate() {
            descriptors.push(descriptor(i + 1, *dtype, name, pos, bytes.len() as u64, 0));
            pos += bytes.len() as u64;
        }
        let part_offset = self.partition_offset();
        let mut part = descriptor(
            objects.len() + 1,
            DataType::Partition,
            "",
            part_offset,
            partition_len,
            part_offset - pos,
        );
        part.extra[0..4].copy_from_slice(&1i32.to_le_bytes()); // squashfs
        part.extra[4..8].copy_from_slice(&2i32.to_le_bytes()); // PrimSys
        part.extra[8..10].copy_from_slice(&self.arch.0);
        descriptors.push(part);

        let mut launch = [0u8; 32];
        launch[..LAUNCH_SCRIPT.len()].copy_from_slice(LAUNCH_SCRIPT);
        let used = descriptors.len() as i64;
        let header = RawHeader {
            launch,
            magic: *MAGIC,
            version: *VERSION,
            arch: [self.arch.0[0], self.arch.0[1], 0],
            uuid: self.uuid.0,
            ctime: self.time,
            mtime: self.time,
            dfree: DESCRIPTORS - used,
            dtotal: DESCRIPTORS,
            doffset: DESCRIPTORS_OFFSET,
            dsize: DESCRIPTORS * DESCRIPTOR_LEN as i64,
            data_offset: DATA_OFFSET as i64,
            data_size: (part_offset + partition_len - DATA_OFFSET) as i64,
        };
        // Everything from 0 to the partition, in one buffer (at most a few pages plus
        // the JSON objects).
        let mut prefix = vec![0u8; part_offset as usize];
        prefix[..128].copy_from_slice(&header.encode());
        for (i, d) in descriptors.iter().enumerate() {
            let at = DESCRIPTORS_OFFSET as usize + i * DESCRIPTOR_LEN as usize;
            prefix[at..at + DESCRIPTOR_LEN as usize].copy_from_slice(&d.encode());
        }
        let mut at = DATA_OFFSET as usize;
        for (_, _, bytes) in &objects {
            prefix[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        }
        w.seek(SeekFrom::Start(0))?;
        w.write_all(&prefix)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sif::read::{Link, PartType, Sif};
    use std::io::Cursor;
    use std::path::Path;

    /// A minimal squashfs-looking partition: `hsqs`, gzip, block log 17, v4.0,
    /// bytes_used = len, padded to 4096.
    pub(crate) fn fake_squashfs(len: u64) -> Vec<u8> {
        let mut sb = vec![0u8; len.next_multiple_of(4096) as usize];
        sb[0..4].copy_from_slice(b"hsqs");
        sb[20..22].copy_from_slice(&1u16.to_le_bytes());
        sb[22..24].copy_from_slice(&17u16.to_le_bytes());
        sb[28..30].copy_from_slice(&4u16.to_le_bytes());
        sb[40..48].copy_from_slice(&len.to_le_bytes());
        sb
    }

    #[test]
    fn round_trip_matches_the_v2_layout() {
        let deffile = b"bootstrap: docker-daemon\nfrom: x:1\n\n".to_vec();
        let builder = SifBuilder::new(Uuid([7; 16]), 1_700_000_000, Arch(*b"04"))
            .deffile(deffile.clone())
            .json("oci-config.json", b"{\"Cmd\":[\"sh\"]}".to_vec())
            .json("inspect-metadata.json", b"{}".to_vec());
        let part = fake_squashfs(5000);
        let off = builder.partition_offset();
        assert_eq!(off, 32768, "32176 + 36 + 2 + 14 rounds up to 32768");
        let mut cur = Cursor::new(Vec::new());
        cur.seek(SeekFrom::Start(off)).unwrap();
        cur.write_all(&part).unwrap();
        builder.write_metadata(&mut cur, part.len() as u64).unwrap();
        let bytes = cur.into_inner();
        assert_eq!(bytes.len() as u64, off + 8192);

        let sif = Sif::parse(
            &mut Cursor::new(&bytes),
            bytes.len() as u64,
            Path::new("rt.sif"),
        )
        .unwrap();
        sif.verify_layout(&mut Cursor::new(&bytes)).unwrap();
        assert_eq!(sif.uuid(), Uuid([7; 16]));
        assert_eq!(sif.arch().to_string(), "arm64");
        assert_eq!((sif.ctime(), sif.mtime()), (1_700_000_000, 1_700_000_000));
        assert_eq!((sif.descriptors_free(), sif.descriptors_total()), (44, 48));
        assert_eq!(sif.data_offset(), 32176);
        assert_eq!(sif.data_offset() + sif.data_size(), bytes.len() as i64);
        let d = sif.descriptors();
        let summary: Vec<_> = d
            .iter()
            .map(|x| (x.data_type(), x.name(), x.offset(), x.size()))
            .collect();
        assert_eq!(
            summary,
            [
                (DataType::Deffile, String::new(), 32176, 36),
                (
                    DataType::GenericJson,
                    "inspect-metadata.json".into(),
                    32212,
                    2
                ),
                (DataType::GenericJson, "oci-config.json".into(), 32214, 14),
                (DataType::Partition, String::new(), 32768, 8192),
            ]
        );
        assert_eq!(d[3].size_with_padding(), 8192 + 32768 - 32228);
        for x in d {
            assert_eq!(x.group_id(), Some(1));
            assert_eq!(x.link(), Link::None);
        }
        assert_eq!(
            d[3].partition().map(|p| p.part_type),
            Some(PartType::PrimSys)
        );
        assert_eq!(&bytes[..31], LAUNCH_SCRIPT);
        let def = sif.read_object(&mut Cursor::new(&bytes), &d[0]).unwrap();
        assert_eq!(def, deffile);
    }
}
