//! Converts a Docker image to a SIF with the native converter and prints the report as
//! one JSON line (used by `bench/sif_convert.py`).
//!
//! ```text
//! cargo run --release --example sif_convert -- IMAGE OUT.sif [--level N] [--threads N]
//! cargo run --release --example sif_convert -- --archive SAVE.tar OUT.sif [...]
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;

use _engine::sif::{convert_archive, convert_image, ConvertOptions};

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let mut archive = None;
    let mut positional = Vec::new();
    let mut opts = ConvertOptions::default();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--archive" => archive = args.next().map(PathBuf::from),
            "--level" => opts.level = args.next().and_then(|v| v.parse().ok()),
            "--threads" => opts.threads = args.next().and_then(|v| v.parse().ok()),
            _ => positional.push(a),
        }
    }
    let result = match (archive, positional.as_slice()) {
        (Some(tar), [out]) => convert_archive(&tar, &PathBuf::from(out), &opts),
        (None, [image, out]) => _engine::runtime::runtime().block_on(async {
            let engine = _engine::docker::Engine::connect(None)
                .await
                .map_err(|source| _engine::sif::SifError::Export {
                    image: image.clone(),
                    source,
                })?;
            convert_image(&engine, image, &PathBuf::from(out), opts).await
        }),
        _ => {
            eprintln!(
                "usage: sif_convert (IMAGE | --archive SAVE.tar) OUT.sif [--level N] [--threads N]"
            );
            return std::process::ExitCode::from(2);
        }
    };
    match result {
        Ok(r) => {
            let line = serde_json::json!({
                "path": r.path, "md5": r.md5, "size": r.size,
                "partition_offset": r.partition_offset, "partition_size": r.partition_size,
                "inodes": r.squashfs.inodes, "data_bytes": r.squashfs.data_bytes,
                "uuid": r.uuid, "seconds": r.seconds,
            });
            println!("{line}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", _engine::errchain::chain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
