//! Writes a dom0 ramdisk: a newc cpio archive (`cpio::write_newc`, the format the dom0
//! kernel reads) of host files and directories.
//!
//! ```text
//! cargo run -p dom0-tools --example mkramdisk -- OUT DEST=SRC...
//! ```
//!
//! Each `DEST=SRC` puts the host file SRC at DEST in the archive, or, if SRC is a
//! directory, everything below it under DEST (`/=dir` for the root).

use std::path::Path;
use std::process::ExitCode;

/// Adds `src` (a file, or a directory recursively) at `dest`.
fn add(members: &mut Vec<(String, Vec<u8>)>, dest: &str, src: &Path) -> std::io::Result<()> {
    let dest = dest.trim_matches('/');
    if !src.is_dir() {
        members.push((dest.to_string(), std::fs::read(src)?));
        return Ok(());
    }
    if !dest.is_empty() {
        members.push((format!("{dest}/"), Vec::new()));
    }
    let mut entries: Vec<_> = std::fs::read_dir(src)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let child = if dest.is_empty() {
            name
        } else {
            format!("{dest}/{name}")
        };
        add(members, &child, &entry.path())?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((out, specs)) = args.split_first().filter(|(_, specs)| !specs.is_empty()) else {
        eprintln!("usage: mkramdisk OUT DEST=SRC...");
        return ExitCode::from(2);
    };
    let mut members = Vec::new();
    for spec in specs {
        let Some((dest, src)) = spec.split_once('=') else {
            eprintln!("mkramdisk: '{spec}' is not DEST=SRC");
            return ExitCode::from(2);
        };
        if let Err(e) = add(&mut members, dest, Path::new(src)) {
            eprintln!("mkramdisk: {src}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let refs: Vec<(&str, &[u8])> = members.iter().map(|(n, d)| (n.as_str(), &d[..])).collect();
    let bytes = dom0_tools::cpio::write_newc(&refs);
    if let Err(e) = std::fs::write(out, &bytes) {
        eprintln!("mkramdisk: {out}: {e}");
        return ExitCode::FAILURE;
    }
    println!("{out}: {} members, {} bytes", refs.len(), bytes.len());
    ExitCode::SUCCESS
}
