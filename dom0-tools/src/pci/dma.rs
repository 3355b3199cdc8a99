//! Bus addresses for DMA from a PV dom0: a device sees machine memory, dom0 its pseudo-physical
//! pages, and the P2M (start_info's `mfn_list`) maps one to the other page by page. A buffer
//! can be given to a device only if its pages are machine-contiguous; this says where it is or
//! why it cannot be given.

/// Bytes in a page.
const PAGE_SIZE: u64 = 4096;

/// Why a buffer has no single bus address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmaError {
    /// The buffer is empty or its end overflows.
    BadRange,
    /// A page lies beyond the P2M.
    NotInP2m,
    /// Consecutive pseudo-physical pages are not consecutive machine frames.
    NotContiguous,
}

impl core::fmt::Display for DmaError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::BadRange => "empty or overflowing DMA range",
            Self::NotInP2m => "a page of the DMA buffer is beyond dom0's P2M",
            Self::NotContiguous => "the DMA buffer is not machine-contiguous",
        })
    }
}

/// dom0's pseudo-physical to machine map: entry `pfn` is that page's machine frame.
pub struct P2m<'a> {
    mfns: &'a [u64],
}

impl<'a> P2m<'a> {
    /// The map over start_info's `mfn_list`.
    pub fn new(mfns: &'a [u64]) -> Self {
        Self { mfns }
    }

    /// The machine address a device uses for `len` bytes at pseudo-physical address `phys`,
    /// if every page of the range follows the previous one in machine memory.
    pub fn bus_address(&self, phys: u64, len: u64) -> Result<u64, DmaError> {
        let last = phys
            .checked_add(len)
            .and_then(|end| end.checked_sub(1))
            .filter(|_| len != 0)
            .ok_or(DmaError::BadRange)?;
        let first_pfn = phys / PAGE_SIZE;
        let last_pfn = last / PAGE_SIZE;
        let frame = |pfn: u64| {
            usize::try_from(pfn)
                .ok()
                .and_then(|i| self.mfns.get(i))
                .copied()
                .ok_or(DmaError::NotInP2m)
        };
        let first_mfn = frame(first_pfn)?;
        for pfn in first_pfn + 1..=last_pfn {
            if Some(frame(pfn)?) != first_mfn.checked_add(pfn - first_pfn) {
                return Err(DmaError::NotContiguous);
            }
        }
        first_mfn
            .checked_mul(PAGE_SIZE)
            .map(|base| base | (phys % PAGE_SIZE))
            .ok_or(DmaError::NotInP2m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn translates_within_and_across_contiguous_pages() {
        let p2m = P2m::new(&[0x500, 0x100, 0x101, 0x300]);
        assert_eq!(p2m.bus_address(0x10, 8), Ok(0x50_0010));
        assert_eq!(p2m.bus_address(0x1ff0, 0x20), Ok(0x10_0ff0));
        assert_eq!(p2m.bus_address(0x2ff0, 0x20), Err(DmaError::NotContiguous));
        assert_eq!(p2m.bus_address(0x3ff0, 0x20), Err(DmaError::NotInP2m));
        assert_eq!(p2m.bus_address(0, 0), Err(DmaError::BadRange));
        assert_eq!(p2m.bus_address(u64::MAX, 2), Err(DmaError::BadRange));
    }

    proptest! {
        /// A range has an address exactly when its frames are consecutive, and the address keeps
        /// the offset in the page.
        #[test]
        fn address_iff_contiguous(
            mfns in proptest::collection::vec(0u64..8, 1..8),
            phys in 0u64..0x8000,
            len in 1u64..0x3000,
        ) {
            let p2m = P2m::new(&mfns);
            let pfns = phys / PAGE_SIZE..=(phys + len - 1) / PAGE_SIZE;
            let frames: Option<std::vec::Vec<u64>> =
                pfns.map(|p| mfns.get(p as usize).copied()).collect();
            let want = match frames {
                None => Err(DmaError::NotInP2m),
                Some(f) if f.windows(2).all(|w| w[1] == w[0] + 1) => {
                    Ok(f[0] * PAGE_SIZE + phys % PAGE_SIZE)
                }
                Some(_) => Err(DmaError::NotContiguous),
            };
            let got = p2m.bus_address(phys, len);
            // A missing page after a discontinuity is reported as either; both refuse.
            prop_assert_eq!(got.is_ok(), want.is_ok());
            if let Ok(address) = got {
                prop_assert_eq!(Ok(address), want);
            }
        }
    }
}
