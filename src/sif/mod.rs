//! Native Docker image → SIF (Singularity Image Format) conversion, no apptainer needed.
//!
//! The pipeline ([`convert`]): the Engine's `docker save` archive ([`archive`]) → the
//! layers flattened into one in-memory tree whose file data stays where it is, as
//! references into the spooled archive ([`layers`]) → what apptainer adds to every
//! rootfs ([`apptainer`]) → a squashfs partition written straight into the SIF
//! ([`squashfs`]) → the SIF header and descriptors ([`write`]). [`read`] parses and
//! verifies a SIF (ours or one made by Singularity/apptainer); [`run`] runs commands and
//! model tests inside one, with apptainer or without it (squashfuse + bwrap).
//!
//! # On-disk layout of a SIF written here (the v2 layout of apptainer ≥ 1.0)
//!
//! ```text
//!  offset 0      ┌──────────────────────────────────────────────┐
//!                │ global header (128 B): launch script, magic  │
//!                │ `SIF_MAGIC\0`, version `01\0`, arch, UUID,   │
//!                │ times, descriptor table and data extents     │
//!  128           ├──────────────────────────────────────────────┤
//!                │ zero                                         │
//!  4096          ├──────────────────────────────────────────────┤
//!                │ descriptor table: 48 × 585 B                 │
//!                │   #1 Deffile  #2 JSON inspect-metadata.json  │
//!                │   #3 JSON oci-config.json  #4 Partition      │
//!                │   #5..#48 unused (all zero)                  │
//!  32176         ├──────────────────────────────────────────────┤  data offset
//!                │ deffile `bootstrap: docker-daemon\nfrom: …`  │
//!                │ inspect-metadata.json (unaligned)            │
//!                │ oci-config.json (unaligned)                  │
//!                │ zero up to the next multiple of 4096         │
//!  4096·k        ├──────────────────────────────────────────────┤
//!                │ squashfs 4.0, gzip, 128 KiB blocks:          │
//!                │   superblock · data blocks and fragments ·   │
//!                │   inode table · directory table · fragment   │
//!                │   table · export table · id table            │
//!                │ zero up to a multiple of 4096                │
//!  file length   └──────────────────────────────────────────────┘  = data offset + data size
//! ```
//!
//! Descriptors are group 1 (stored `0xF0000001`), link 0; the partition is PrimSys,
//! fstype squashfs, with the arch of the image config; the header arch is the same.
//! Every byte is a function of the image and [`convert::ConvertOptions`]: the UUID is
//! derived from the image digest and the times come from `SOURCE_DATE_EPOCH` (else the
//! image's `created`), so the same image gives the same SIF.

pub mod apptainer;
pub mod archive;
pub mod convert;
pub mod layers;
pub mod read;
pub mod run;
pub mod squashfs;
pub mod tree;
pub mod write;

mod error;
mod timefmt;

pub use convert::{convert_archive, convert_image, ConvertOptions, ConvertReport};

pub use error::SifError;
pub use read::{verify, Descriptor, Sif, SifInspection};
pub use run::{run, test_model, test_models, Bind, Output, RunOptions, RunOutput, RunnerKind};
pub use write::SifBuilder;

/// The project's shared test data: `$KIPOI_SHARED_DIR`, else `../shared` beside the clone
/// (a worktree under `wt/` finds it one level further up).
#[cfg(test)]
pub(crate) fn shared_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("KIPOI_SHARED_DIR") {
        return dir.into();
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let near = root.join("../shared");
    if near.is_dir() {
        near
    } else {
        root.join("../../shared")
    }
}

/// Whether a missing requirement must fail the test instead of skipping it: `CI` set to
/// anything but empty, `0` or `false`, or `KIPOI_REQUIRE_DOCKER=1` (the rule of the Python
/// tests' `tests/requirements.py`).
#[cfg(test)]
pub(crate) fn strict_requirements() -> bool {
    let ci = std::env::var("CI").unwrap_or_default();
    !matches!(ci.trim().to_ascii_lowercase().as_str(), "" | "0" | "false")
        || std::env::var("KIPOI_REQUIRE_DOCKER").is_ok_and(|v| v.trim() == "1")
}

/// Whether the external `tool` can be run. A test that needs it fails under `CI` when it
/// is missing (naming it), and is skipped elsewhere.
#[cfg(test)]
#[allow(clippy::print_stderr)]
pub(crate) fn have_tool(tool: &str) -> bool {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            !strict_requirements(),
            "`{tool}` is missing and CI is set: install it (scripts/setup.sh)"
        );
        eprintln!("skipped: `{tool}` is not installed");
    }
    found
}
