//! Xen's ELF notes (`elfnote.h`): the note types, and [`xen_elf_notes!`](crate::xen_elf_notes)
//! which puts them into a guest kernel built in Rust.
//!
//! A PV kernel tells the domain builder how to load and start it through notes named
//! `"Xen"` in a `PT_NOTE` segment. [`crate::image`] reads them back.

use crate::macros::xen_enum;

xen_enum! {
    /// A Xen ELF note type (`XEN_ELFNOTE_*`).
    pub enum ElfNoteType: u32, prefix "XEN_ELFNOTE_" {
        /// Free-form information (ignored).
        Info = 0 => "INFO",
        /// Virtual address of the entry point.
        Entry = 1 => "ENTRY",
        /// Virtual address of the page Xen fills with hypercall stubs.
        HypercallPage = 2 => "HYPERCALL_PAGE",
        /// Virtual address the kernel's pseudo-physical address 0 maps to.
        VirtBase = 3 => "VIRT_BASE",
        /// Subtracted from `p_paddr` before adding `VIRT_BASE`.
        PaddrOffset = 4 => "PADDR_OFFSET",
        /// `"xen-3.0"`.
        XenVersion = 5 => "XEN_VERSION",
        /// The guest OS name.
        GuestOs = 6 => "GUEST_OS",
        /// The guest OS version.
        GuestVersion = 7 => "GUEST_VERSION",
        /// `"generic"` (or a Linux kernel).
        Loader = 8 => "LOADER",
        /// PAE mode (x86-32).
        PaeMode = 9 => "PAE_MODE",
        /// `|`-separated feature names, `!` marks a required one.
        Features = 10 => "FEATURES",
        /// Load the BSD symbol table.
        BsdSymtab = 11 => "BSD_SYMTAB",
        /// Lowest hypervisor address (x86-32).
        HvStartLow = 12 => "HV_START_LOW",
        /// Mask and value of valid L1 MFN bits.
        L1MfnValid = 13 => "L1_MFN_VALID",
        /// The kernel supports suspend cancellation.
        SuspendCancel = 14 => "SUSPEND_CANCEL",
        /// Virtual address where the kernel wants the initial P2M.
        InitP2m = 15 => "INIT_P2M",
        /// The kernel accepts `mod_start` as a PFN.
        ModStartPfn = 16 => "MOD_START_PFN",
        /// Bitmap of supported features (`u32` per submap).
        SupportedFeatures = 17 => "SUPPORTED_FEATURES",
        /// 32-bit physical entry point (PVH).
        Phys32Entry = 18 => "PHYS32_ENTRY",
        /// Crash information (core dumps).
        CrashInfo = 0x1000001 => "CRASH_INFO",
        /// Crash registers (core dumps).
        CrashRegs = 0x1000002 => "CRASH_REGS",
        /// Core dump: none.
        DumpcoreNone = 0x2000000 => "DUMPCORE_NONE",
        /// Core dump header.
        DumpcoreHeader = 0x2000001 => "DUMPCORE_HEADER",
        /// Core dump Xen version.
        DumpcoreXenVersion = 0x2000002 => "DUMPCORE_XEN_VERSION",
        /// Core dump format version.
        DumpcoreFormatVersion = 0x2000003 => "DUMPCORE_FORMAT_VERSION",
    }
}

/// `XEN_ELFNOTE_MAX`: the highest start-of-day note type.
pub const XEN_ELFNOTE_MAX: u32 = 18;

/// The note name all Xen notes carry, NUL included.
pub const XEN_NOTE_NAME: [u8; 4] = *b"Xen\0";

/// An address in the guest image, held as a function pointer so that the linker writes
/// the final address into the note.
pub type NoteAddr = unsafe extern "C" fn() -> !;

/// Bytes of desc a string note needs: the string, its NUL, padding to 4.
pub const fn str_note_desc_len(s: &str) -> usize {
    (s.len() + 1).next_multiple_of(4)
}

/// A note whose desc is a NUL-terminated string.
#[repr(C, align(4))]
pub struct StrNote<const N: usize> {
    namesz: u32,
    descsz: u32,
    type_: u32,
    name: [u8; 4],
    desc: [u8; N],
}

impl<const N: usize> StrNote<N> {
    /// A note of `type_` whose desc is `s` and a NUL. `N` must be [`str_note_desc_len`].
    pub const fn new(type_: ElfNoteType, s: &str) -> Self {
        assert!(N == str_note_desc_len(s));
        let mut desc = [0u8; N];
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            assert!(bytes[i] != 0, "a string note must not contain NUL");
            desc[i] = bytes[i];
            i += 1;
        }
        Self {
            namesz: 4,
            descsz: bytes.len() as u32 + 1,
            type_: type_ as u32,
            name: XEN_NOTE_NAME,
            desc,
        }
    }
}

/// A note whose desc is a little-endian number of `N` bytes (4 or 8).
#[repr(C, align(4))]
pub struct NumNote<const N: usize> {
    namesz: u32,
    descsz: u32,
    type_: u32,
    name: [u8; 4],
    desc: [u8; N],
}

impl NumNote<8> {
    /// A note of `type_` with an 8-byte value.
    pub const fn new_u64(type_: ElfNoteType, value: u64) -> Self {
        Self {
            namesz: 4,
            descsz: 8,
            type_: type_ as u32,
            name: XEN_NOTE_NAME,
            desc: value.to_le_bytes(),
        }
    }
}

impl NumNote<4> {
    /// A note of `type_` with a 4-byte value.
    pub const fn new_u32(type_: ElfNoteType, value: u32) -> Self {
        Self {
            namesz: 4,
            descsz: 4,
            type_: type_ as u32,
            name: XEN_NOTE_NAME,
            desc: value.to_le_bytes(),
        }
    }
}

/// A note whose desc is the 8-byte address of a symbol in the image.
#[repr(C, packed(4))]
pub struct AddrNote {
    namesz: u32,
    descsz: u32,
    type_: u32,
    name: [u8; 4],
    desc: NoteAddr,
}

impl AddrNote {
    /// A note of `type_` holding the address of `addr`.
    pub const fn new(type_: ElfNoteType, addr: NoteAddr) -> Self {
        Self {
            namesz: 4,
            descsz: 8,
            type_: type_ as u32,
            name: XEN_NOTE_NAME,
            desc: addr,
        }
    }
}

const _: () = assert!(size_of::<AddrNote>() == 24);
const _: () = assert!(size_of::<StrNote<8>>() == 24);

/// Puts Xen ELF notes into the `.note.Xen` section of the crate being built.
///
/// Each `key: value` pair becomes one note; the keys are `guest_os`, `guest_version`,
/// `xen_version`, `loader`, `features`, `pae_mode` (strings), `virt_base`,
/// `paddr_offset`, `init_p2m` (`u64`), `supported_features`, `mod_start_pfn` (`u32`),
/// and `entry`, `hypercall_page` (symbols of type [`NoteAddr`]). The guest's linker script
/// must keep `.note.Xen` and give it a `PT_NOTE` program header.
///
/// ```ignore
/// guest_abi::xen_elf_notes! {
///     guest_os: "hello",
///     xen_version: "xen-3.0",
///     loader: "generic",
///     virt_base: 0xffff_ffff_8000_0000,
///     paddr_offset: 0xffff_ffff_8000_0000,
///     entry: guest_abi::runtime::_start,
///     hypercall_page: guest_abi::runtime::hypercall_page,
/// }
/// ```
#[macro_export]
macro_rules! xen_elf_notes {
    ($($key:ident : $value:expr),* $(,)?) => {
        $( $crate::__xen_elf_note!($key: $value); )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __xen_elf_note {
    (@str $ty:ident, $value:expr) => {
        const _: () = {
            const VALUE: &str = $value;
            #[used]
            #[unsafe(link_section = ".note.Xen")]
            static NOTE: $crate::elfnote::StrNote<{ $crate::elfnote::str_note_desc_len(VALUE) }> =
                $crate::elfnote::StrNote::new($crate::elfnote::ElfNoteType::$ty, VALUE);
        };
    };
    (@u64 $ty:ident, $value:expr) => {
        const _: () = {
            #[used]
            #[unsafe(link_section = ".note.Xen")]
            static NOTE: $crate::elfnote::NumNote<8> =
                $crate::elfnote::NumNote::new_u64($crate::elfnote::ElfNoteType::$ty, $value);
        };
    };
    (@u32 $ty:ident, $value:expr) => {
        const _: () = {
            #[used]
            #[unsafe(link_section = ".note.Xen")]
            static NOTE: $crate::elfnote::NumNote<4> =
                $crate::elfnote::NumNote::new_u32($crate::elfnote::ElfNoteType::$ty, $value);
        };
    };
    (@addr $ty:ident, $value:expr) => {
        const _: () = {
            #[used]
            #[unsafe(link_section = ".note.Xen")]
            static NOTE: $crate::elfnote::AddrNote =
                $crate::elfnote::AddrNote::new($crate::elfnote::ElfNoteType::$ty, $value);
        };
    };
    (guest_os: $v:expr) => { $crate::__xen_elf_note!(@str GuestOs, $v); };
    (guest_version: $v:expr) => { $crate::__xen_elf_note!(@str GuestVersion, $v); };
    (xen_version: $v:expr) => { $crate::__xen_elf_note!(@str XenVersion, $v); };
    (loader: $v:expr) => { $crate::__xen_elf_note!(@str Loader, $v); };
    (features: $v:expr) => { $crate::__xen_elf_note!(@str Features, $v); };
    (pae_mode: $v:expr) => { $crate::__xen_elf_note!(@str PaeMode, $v); };
    (virt_base: $v:expr) => { $crate::__xen_elf_note!(@u64 VirtBase, $v); };
    (paddr_offset: $v:expr) => { $crate::__xen_elf_note!(@u64 PaddrOffset, $v); };
    (init_p2m: $v:expr) => { $crate::__xen_elf_note!(@u64 InitP2m, $v); };
    (supported_features: $v:expr) => { $crate::__xen_elf_note!(@u32 SupportedFeatures, $v); };
    (mod_start_pfn: $v:expr) => { $crate::__xen_elf_note!(@u32 ModStartPfn, $v); };
    (entry: $v:expr) => { $crate::__xen_elf_note!(@addr Entry, $v); };
    (hypercall_page: $v:expr) => { $crate::__xen_elf_note!(@addr HypercallPage, $v); };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_note_lengths() {
        assert_eq!(str_note_desc_len(""), 4);
        assert_eq!(str_note_desc_len("abc"), 4);
        assert_eq!(str_note_desc_len("xen-3.0"), 8);
        assert_eq!(str_note_desc_len("generic"), 8);
        assert_eq!(str_note_desc_len("generi"), 8);
        assert_eq!(str_note_desc_len("hello-guest"), 12);
    }

    #[test]
    fn string_note_bytes() {
        let note = StrNote::<8>::new(ElfNoteType::Loader, "generic");
        assert_eq!((note.namesz, note.descsz, note.type_), (4, 8, 8));
        assert_eq!(&note.desc, b"generic\0");
        assert_eq!(note.name, *b"Xen\0");
    }
}
