//! The build script of every guest crate (`build = "../build.rs"` in its Cargo.toml): links
//! the bare-metal build with the guests' one linker script, `guests/link.ld`; the host build
//! (for `cargo test` and clippy over the workspace) is an ordinary empty program.

fn main() {
    println!("cargo:rerun-if-changed=../link.ld");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        println!("cargo:rustc-link-arg-bins=-T{dir}/../link.ld");
    }
}
