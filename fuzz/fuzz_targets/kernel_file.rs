//! The builder's kernel files: `dom0_tools::kernel_file::unpack` on any bytes, and on the
//! bytes as the payload of a well-formed bzImage (so every decoder sees them). It must
//! never panic; an image it returns is the file itself or a decompressed ELF file of the
//! size the payload declares.
#![no_main]

use dom0_tools::kernel_file::{UnpackError, decompress, unpack};
use libfuzzer_sys::fuzz_target;

/// A bzImage (boot protocol 2.15, one setup sector) whose payload is `payload`.
fn bzimage(payload: &[u8]) -> Vec<u8> {
    let mut file = vec![0u8; 1024];
    file[0x1f1] = 1;
    file[0x202..0x206].copy_from_slice(b"HdrS");
    file[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    file[0x248..0x24c].copy_from_slice(&0u32.to_le_bytes());
    file[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    file.extend_from_slice(payload);
    file
}

fn check(file: &[u8], payload: Option<&[u8]>) {
    match unpack(file) {
        Ok(image) => {
            if let Some(p) = payload {
                let declared = u32::from_le_bytes(p[p.len() - 4..].try_into().unwrap());
                assert_eq!(image.len(), declared as usize, "size as declared");
                assert!(image.starts_with(b"\x7fELF"), "an ELF file");
                assert!(image.len() <= decompress::MAX_KERNEL_SIZE);
            }
        }
        Err(e) => {
            let _ = e.to_string();
            if let UnpackError::TooLarge(n) = e {
                assert!(n > decompress::MAX_KERNEL_SIZE);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data, None);
    if data.len() >= 4 {
        check(&bzimage(data), Some(data));
    }
});
