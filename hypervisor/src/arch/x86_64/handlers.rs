//! The one way `arch` reaches the rest of the hypervisor: the handlers the machine registers
//! at boot for what the hardware delivers (a guest's `syscall`, an exception or interrupt taken
//! in a guest, the timer and console input interrupts, a return to a guest the CPU refused). `arch`
//! names none of the modules that handle them, so no import runs back up from it.

use crate::x86::regs::Regs;

/// What the machine does with each event the hardware delivers.
#[derive(Clone, Copy, Debug)]
pub struct Handlers {
    /// A `syscall` from a guest, kernel or user mode (registers saved in the guest frame).
    pub guest_syscall: fn(&mut Regs),
    /// An exception or interrupt that arrived while a guest ran, after `arch` handled its
    /// own part (the interrupt controller, a fault it fixes up).
    pub guest_trap: fn(&mut Regs),
    /// The local APIC timer fired.
    pub timer: fn(),
    /// COM1 or the keyboard has input (the handler reads it and acknowledges the interrupt).
    pub console_input: fn(),
    /// The CPU refused to resume a guest with the frame it was given.
    pub bad_return_frame: fn() -> !,
}

/// Before registration (early boot) the interrupts that can arrive are ignored; guests do not
/// exist yet.
const NONE: Handlers = Handlers {
    guest_syscall: |_| {},
    guest_trap: |_| {},
    timer: || {},
    console_input: || {},
    bad_return_frame: || panic!("a guest return failed before any guest existed"),
};

static HANDLERS: spin::Once<Handlers> = spin::Once::new();

/// Registers the machine's handlers, once, before interrupts are enabled.
pub fn register(h: Handlers) {
    HANDLERS.call_once(|| h);
}

#[inline]
pub(super) fn get() -> &'static Handlers {
    HANDLERS.get().unwrap_or(&NONE)
}

/// Called by the `syscall` entry stubs with the saved guest frame.
pub(super) extern "C" fn guest_syscall(regs: &mut Regs) {
    (get().guest_syscall)(regs)
}
