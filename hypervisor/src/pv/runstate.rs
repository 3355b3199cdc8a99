//! A vCPU's runstate accounting (`struct vcpu_runstate_info`): the state it is in, since when,
//! and the nanoseconds it has spent in each state, as `VCPUOP_get_runstate_info` reports and
//! the area registered with `VCPUOP_register_runstate_memory_area` mirrors. Linux derives steal
//! time from it and refuses to boot without the area.

use crate::pv::guest_mem::{GuestFault, GuestMemory};
use guest_abi::vcpu::{Runstate, VcpuRunstateInfo, XEN_RUNSTATE_UPDATE};

/// Time spent per state, in system-time nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunstateClock {
    state: Runstate,
    entered: u64,
    time: [u64; 4],
}

impl Default for RunstateClock {
    /// A vCPU that has not run yet is offline, as Xen creates them.
    fn default() -> Self {
        Self {
            state: Runstate::Offline,
            entered: 0,
            time: [0; 4],
        }
    }
}

impl RunstateClock {
    /// The current state.
    pub fn state(&self) -> Runstate {
        self.state
    }

    /// Enters `to` at `now`, charging the time since the last change to the state being left.
    /// Time never runs backwards: an earlier `now` charges nothing.
    pub fn change(&mut self, to: Runstate, now: u64) {
        if to == self.state {
            return;
        }
        let slot = &mut self.time[self.state.raw() as usize];
        *slot = slot.saturating_add(now.saturating_sub(self.entered));
        self.state = to;
        self.entered = self.entered.max(now);
    }

    /// The record as of the last change: what the guest's area holds (Xen's `v->runstate`).
    pub fn record(&self) -> VcpuRunstateInfo {
        VcpuRunstateInfo {
            state: self.state.raw() as i32,
            _hole: 0,
            state_entry_time: self.entered,
            time: self.time,
        }
    }

    /// The record with the current state's time counted up to `now` (Xen's
    /// `vcpu_runstate_get`, for `VCPUOP_get_runstate_info`).
    pub fn snapshot(&self, now: u64) -> VcpuRunstateInfo {
        let mut info = self.record();
        let slot = &mut info.time[self.state.raw() as usize];
        *slot = slot.saturating_add(now.saturating_sub(self.entered));
        info
    }
}

/// Where the guest wants its runstate mirrored (`VCPUOP_register_runstate_memory_area`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunstateArea {
    /// Guest-kernel virtual address of the area (0: none).
    pub va: u64,
    /// The record changed while the area could not be written (the vCPU was in guest user
    /// mode, whose page tables need not map it): write it on the next entry to the kernel.
    pub stale: bool,
}

/// Byte of `state_entry_time` holding [`XEN_RUNSTATE_UPDATE`] (bit 63, little-endian).
const UPDATE_FLAG_BYTE: u64 = 8 + 7;

/// Writes `record` to the guest area at `va`. With `update_flag`
/// (`VMASST_TYPE_runstate_update_flag`) the guest can tell a torn read: [`XEN_RUNSTATE_UPDATE`]
/// is set in `state_entry_time` before the record is written and cleared after, as Xen does.
pub fn write_area<M: GuestMemory>(
    mem: &mut M,
    va: u64,
    record: &VcpuRunstateInfo,
    update_flag: bool,
) -> Result<(), GuestFault> {
    let flag_byte = (XEN_RUNSTATE_UPDATE >> 56) as u8;
    let flag_at = va.wrapping_add(UPDATE_FLAG_BYTE);
    if update_flag {
        mem.write(
            flag_at,
            &[(record.state_entry_time >> 56) as u8 | flag_byte],
        )?;
        let mut flagged = *record;
        flagged.state_entry_time |= XEN_RUNSTATE_UPDATE;
        mem.write_obj(va, &flagged)?;
        mem.write(
            flag_at,
            &[(record.state_entry_time >> 56) as u8 & !flag_byte],
        )
    } else {
        mem.write_obj(va, record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pv::guest_mem::fake::FakeGuest;

    #[test]
    fn time_is_charged_to_the_state_left() {
        let mut c = RunstateClock::default();
        c.change(Runstate::Running, 100);
        c.change(Runstate::Blocked, 250);
        c.change(Runstate::Runnable, 300);
        c.change(Runstate::Running, 310);
        let r = c.record();
        assert_eq!(r.state, Runstate::Running.raw() as i32);
        assert_eq!(r.state_entry_time, 310);
        assert_eq!(r.time, [150, 10, 50, 100]);
        // The snapshot counts the running state up to now; the record does not.
        assert_eq!(c.snapshot(400).time, [240, 10, 50, 100]);
        assert_eq!(c.record().time[0], 150);
    }

    #[test]
    fn same_state_and_earlier_times_change_nothing() {
        let mut c = RunstateClock::default();
        c.change(Runstate::Running, 100);
        let before = c;
        c.change(Runstate::Running, 500);
        assert_eq!(c, before);
        c.change(Runstate::Blocked, 50);
        assert_eq!(c.record().time[0], 0);
        assert_eq!(
            c.record().state_entry_time,
            100,
            "entry time never goes back"
        );
    }

    #[test]
    fn area_write_leaves_the_update_flag_clear() {
        let mut mem = FakeGuest::default();
        mem.map(0x5000, 0x1000);
        let mut c = RunstateClock::default();
        c.change(Runstate::Running, 0x1234);
        for flag in [false, true] {
            write_area(&mut mem, 0x5008, &c.record(), flag).unwrap();
            let back: VcpuRunstateInfo = mem.read_obj(0x5008).unwrap();
            assert_eq!(back, c.record());
        }
        assert!(write_area(&mut mem, 0x9000, &c.record(), true).is_err());
    }
}
