//! `XENMEM_exchange` on the frame table, chunk by chunk as Xen's `memory_exchange()`: a
//! domain's frames are traded for new ones, typically machine-contiguous and below an address
//! width, for DMA.
//!
//! A chunk is the smallest run of input and output extents holding the same number of frames
//! (one input extent and several output extents, or the other way round). Per chunk: every input
//! frame is taken from the domain (it must be the domain's, allocated and referenced by nothing
//! else: no mapping, no pin, no type, not a frame the hypervisor shares), the output extents are
//! allocated, and only then is the chunk committed: the input frames are freed (scrubbed, their
//! M2P entries invalidated) and the output extents given to the domain, their M2P entries set to
//! the guest frame numbers of the output list, which receives the new machine frames. A chunk
//! that fails before its commit gives its input frames back untouched. The domain's page count
//! does not change (as Xen's `MEMF_no_refcount`), nor is it checked against its maximum.

use super::store::{FramePool, FrameStore, M2pTable};
use super::{DomainRef, FrameInfo, FrameTable, Mfn, Outcome, Pfn, PvMmError};
use alloc::vec::Vec;

/// The guest's two extent lists, indexed over the whole call.
pub trait ExchangeLists {
    /// Input extent `index`: its first machine frame.
    fn input(&mut self, index: u64) -> Result<u64, PvMmError>;
    /// Output extent `index`: the guest frame number it is to be recorded at.
    fn output(&mut self, index: u64) -> Result<u64, PvMmError>;
    /// Writes output extent `index`'s new first machine frame.
    fn set_output(&mut self, index: u64, mfn: u64) -> Result<(), PvMmError>;
}

/// The shape of an exchange and the chunks one pass does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunks {
    /// log2 frames per input extent.
    pub in_order: u32,
    /// log2 frames per output extent.
    pub out_order: u32,
    /// Output frames must be below this frame number.
    pub below: u64,
    /// The first chunk of this pass.
    pub first: u64,
    /// One past the last chunk of this pass.
    pub end: u64,
}

impl Chunks {
    /// log2 input extents per chunk.
    pub const fn in_per_chunk(&self) -> u32 {
        self.out_order.saturating_sub(self.in_order)
    }

    /// log2 output extents per chunk.
    pub const fn out_per_chunk(&self) -> u32 {
        self.in_order.saturating_sub(self.out_order)
    }
}

/// How a pass ended: the chunks finished (the next chunk's index) and the error, if one
/// stopped it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExchangeEnd {
    /// Index of the first chunk not exchanged.
    pub next: u64,
    /// Why the pass stopped early.
    pub result: Result<(), PvMmError>,
}

impl<S: FrameStore, P: FramePool, M: M2pTable, const D: usize> FrameTable<S, P, M, D> {
    /// Exchanges chunks `c.first..c.end` of `d`'s extents (see the module comment).
    pub fn exchange(
        &mut self,
        d: DomainRef,
        c: &Chunks,
        lists: &mut impl ExchangeLists,
    ) -> Outcome<ExchangeEnd> {
        let mut end = ExchangeEnd {
            next: c.first,
            result: Ok(()),
        };
        while end.next < c.end {
            if let Err(e) = self.exchange_chunk(d, c, end.next, lists) {
                end.result = e;
                break;
            }
            end.next += 1;
        }
        self.outcome(end)
    }

    /// One chunk; `Err(Ok(()))` stops the pass without an error (the domain is dying).
    fn exchange_chunk(
        &mut self,
        d: DomainRef,
        c: &Chunks,
        chunk: u64,
        lists: &mut impl ExchangeLists,
    ) -> Result<(), Result<(), PvMmError>> {
        if self.domain(d).map_err(Err)?.is_dying() {
            return Err(Ok(()));
        }
        let in_frames = 1usize << (c.in_per_chunk() + c.in_order);
        let outs = 1usize << c.out_per_chunk();
        // The frames taken and the extents allocated are remembered here, not re-read from the
        // guest's lists, which it may change meanwhile.
        let mut stolen: Vec<Mfn> = Vec::new();
        let mut allocated: Vec<Mfn> = Vec::new();
        if stolen.try_reserve_exact(in_frames).is_err()
            || allocated.try_reserve_exact(outs).is_err()
        {
            return Err(Err(PvMmError::OutOfMemory));
        }
        let first_in = chunk << c.in_per_chunk();
        let taken = (0..1u64 << c.in_per_chunk()).try_for_each(|j| {
            let base = lists.input(first_in + j)?;
            for k in 0..1u64 << c.in_order {
                let mfn = base.checked_add(k).map(Mfn).ok_or(PvMmError::BadArgument)?;
                self.steal(d, mfn)?;
                stolen.push(mfn);
            }
            Ok(())
        });
        let taken = taken.and_then(|()| {
            for _ in 0..outs {
                let base = self
                    .pool
                    .alloc_below(c.out_order, c.below)
                    .ok_or(PvMmError::OutOfMemory)?;
                allocated.push(base);
            }
            Ok(())
        });
        if let Err(e) = taken {
            for &m in &allocated {
                self.free_extent(m, c.out_order);
            }
            for &m in &stolen {
                self.unsteal(d, m);
            }
            return Err(Err(e));
        }
        // Commit: free the input frames, then give the domain the output extents.
        for &m in &stolen {
            self.release_stolen(d, m);
        }
        let first_out = chunk << c.out_per_chunk();
        let mut result = Ok(());
        for (j, &base) in allocated.iter().enumerate() {
            self.assign_exchanged(d, base, c.out_order);
            let index = first_out + j as u64;
            let gpfn = match lists.output(index) {
                Ok(g) => g,
                Err(e) => {
                    result = Err(e);
                    continue;
                }
            };
            for k in 0..1u64 << c.out_order {
                self.m2p.set(Mfn(base.0 + k), Pfn(gpfn.wrapping_add(k)));
            }
            if let Err(e) = lists.set_output(index, base.0) {
                result = Err(e);
            }
        }
        // As Xen, a chunk whose output list could not be read or written is done but not
        // counted.
        result.map_err(Err)
    }

    /// Takes `mfn` from `d` for an exchange: it must be `d`'s, allocated, and held by nothing
    /// else. Its allocation reference is set aside, so that it cannot be taken twice.
    fn steal(&mut self, d: DomainRef, mfn: Mfn) -> Result<(), PvMmError> {
        if !self.in_ram(mfn) {
            return Err(PvMmError::BadArgument);
        }
        let f = *self.store.info(mfn);
        let alone = f.owner() == Some(d.id())
            && f.is_allocated()
            && !f.is_shared()
            && f.count() == 1
            && f.type_count() == 0;
        if !alone {
            return Err(PvMmError::BadArgument);
        }
        let f = self.store.info_mut(mfn);
        f.set_allocated(false);
        f.count = 0;
        Ok(())
    }

    /// Gives a frame [`steal`](Self::steal) took back to `d`, as it was.
    fn unsteal(&mut self, d: DomainRef, mfn: Mfn) {
        let f = self.store.info_mut(mfn);
        debug_assert!(
            f.owner() == Some(d.id()) && f.count == 0,
            "{mfn} was not taken"
        );
        f.set_allocated(true);
        f.count = 1;
    }

    /// Frees a frame [`steal`](Self::steal) took, keeping `d`'s page count (its replacement
    /// comes with the chunk).
    fn release_stolen(&mut self, d: DomainRef, mfn: Mfn) {
        debug_assert!(self.store.info(mfn).owner() == Some(d.id()));
        *self.store.info_mut(mfn) = FrameInfo::FREE;
        self.store.zero_frame(mfn);
        self.m2p.set(mfn, Pfn::INVALID);
        self.pool.free(mfn);
        self.flush_pending = true;
    }

    /// Gives `d` the freshly allocated extent at `base`, zeroed, without charging its page
    /// count.
    fn assign_exchanged(&mut self, d: DomainRef, base: Mfn, order: u32) {
        for k in 0..1u64 << order {
            let mfn = Mfn(base.0 + k);
            self.store.zero_frame(mfn);
            *self.store.info_mut(mfn) = FrameInfo::allocated_to(d.id());
        }
    }

    /// Returns an extent allocated for an exchange that did not happen.
    fn free_extent(&mut self, base: Mfn, order: u32) {
        for k in 0..1u64 << order {
            self.pool.free(Mfn(base.0 + k));
        }
    }
}
