//! The dom0 toolstack's text inputs: the xl configuration parser
//! (`dom0_tools::config::parse`, with command-line overrides), the xl-like command parser
//! (`dom0_tools::cli::parse_command`) and the newc cpio reader (`dom0_tools::cpio`). Inputs are
//! split at NUL bytes: the first part is the file, the others overrides and command lines.
#![no_main]

use dom0_tools::{cli, config, cpio};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(archive) = cpio::Archive::parse(data) {
        for (path, _) in archive.entries().take(64) {
            // Every listed path can be looked up (links may still fail to resolve).
            let _ = archive.lookup(path);
            let _ = archive.file(path);
        }
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\0');
    let file = parts.next().unwrap_or("");
    let rest: Vec<&str> = parts.take(8).collect();
    let first = config::parse("fuzz.cfg", file, &rest);
    // Parsing is a pure function of its input.
    let again = config::parse("fuzz.cfg", file, &rest);
    assert_eq!(first, again);
    for line in file.lines().take(32).chain(rest.iter().copied()) {
        let _ = cli::parse_command(line);
    }
});
