//! Bare-metal builds link with `linker.ld` and assemble the generated exception entry stubs.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;

/// Vectors for which the CPU pushes an error code.
const ERROR_CODE_VECTORS: [u8; 10] = [8, 10, 11, 12, 13, 14, 17, 21, 29, 30];

fn main() {
    println!("cargo:rerun-if-changed=linker.ld");
    println!("cargo:rerun-if-changed=build.rs");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }
    let dir = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");

    // One entry stub per vector: push a zero error code where the CPU does not push one, then
    // the vector number, so every vector reaches `trap_common` with the same frame layout.
    let mut asm = String::from(".section .text.trap_stubs, \"ax\"\n.code64\n");
    for v in 0..=255u8 {
        let _ = writeln!(asm, ".balign 16\ntrap_stub_{v}:");
        if !ERROR_CODE_VECTORS.contains(&v) {
            asm.push_str("    push $0\n");
        }
        let _ = writeln!(asm, "    push ${v}\n    jmp trap_common");
    }
    asm.push_str(
        ".section .rodata.trap_stubs, \"a\"\n.balign 8\n.global TRAP_STUBS\nTRAP_STUBS:\n",
    );
    for v in 0..=255u8 {
        let _ = writeln!(asm, "    .quad trap_stub_{v}");
    }
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("trap_stubs.s");
    fs::write(out, asm).expect("write trap_stubs.s");
}
