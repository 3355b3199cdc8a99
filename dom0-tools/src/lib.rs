//! The dom0 toolstack: filled in by the domain-lifecycle work.
#![no_std]
