//! The hypervisor's command line (`hypervisor::boot::cmdline::Options::parse`, `parse_size`), and
//! dom0's memory computed from it: never panics, warns about what it does not apply, and the
//! dom0 size is never more than the free memory it is given.
#![no_main]

use hypervisor::boot::cmdline::{Options, parse_size};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut warnings = 0usize;
    let opts = Options::parse(text, |w| {
        let _ = w.to_string();
        warnings += 1;
    });
    assert!(warnings <= text.split_ascii_whitespace().count());
    for free in [0, 1, 4096, 1 << 20, u64::MAX] {
        assert!(
            opts.dom0_mem.pages(free) <= free,
            "dom0 given more than is free"
        );
    }
    for word in text.split_ascii_whitespace() {
        let _ = parse_size(word);
    }
});
