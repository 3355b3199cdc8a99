//! The register frame saved on every entry into the hypervisor, from a guest or from itself.
//!
//! The entry paths (`arch/x86_64/trap.rs`, `arch/x86_64/guest_entry.rs`) push exactly this layout, so
//! for a guest entry it is both the saved hardware state and the guest's live registers: what
//! the hypervisor writes here is what the guest resumes with.

/// General registers, then the vector and error code pushed by the entry stub, then the frame
/// the CPU pushes for an interrupt (`rip`, `cs`, `rflags`, `rsp`, `ss`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Regs {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    /// Vector number (or [`SYSCALL_VECTOR`] for a `syscall` entry).
    pub vector: u64,
    /// The CPU's error code, or 0 where there is none.
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// The pseudo-vector the `syscall` entry path records.
pub const SYSCALL_VECTOR: u64 = 0x100;

/// Byte offset of `cs` in [`Regs`], used by the assembly entry paths.
pub const REGS_CS_OFFSET: usize = core::mem::offset_of!(Regs, cs);

const _: () = assert!(core::mem::size_of::<Regs>() == 22 * 8);
const _: () = assert!(REGS_CS_OFFSET == 18 * 8);

impl Regs {
    /// Whether the saved context ran in ring 3 (a guest).
    pub const fn from_guest(&self) -> bool {
        self.cs & 3 == 3
    }
}

/// Assembly that pushes the general registers in [`Regs`] order (the last push is `rax`, at
/// the lowest address).
#[macro_export]
#[doc(hidden)]
macro_rules! push_regs_asm {
    () => {
        "push %r15; push %r14; push %r13; push %r12; push %r11; push %r10; push %r9; push %r8
         push %rbp; push %rdi; push %rsi; push %rdx; push %rcx; push %rbx; push %rax"
    };
}

/// Assembly that pops what [`push_regs_asm`] pushed.
#[macro_export]
#[doc(hidden)]
macro_rules! pop_regs_asm {
    () => {
        "pop %rax; pop %rbx; pop %rcx; pop %rdx; pop %rsi; pop %rdi; pop %rbp
         pop %r8; pop %r9; pop %r10; pop %r11; pop %r12; pop %r13; pop %r14; pop %r15"
    };
}
