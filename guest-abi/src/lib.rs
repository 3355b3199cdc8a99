//! Xen's public paravirtualization ABI for x86-64 PV guests, in Rust types.
#![no_std]
