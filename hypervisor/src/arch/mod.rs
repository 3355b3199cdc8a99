//! Hardware access: everything that needs `unsafe`, assembly or a real machine.

pub mod x86_64;
