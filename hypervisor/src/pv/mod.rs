//! The paravirtual execution model of 64-bit PV guests, as pure logic: guest memory access,
//! vCPU state, trap bounces and the `iret` hypercall. The arch layer supplies the hardware
//! effects (loading CR3 and segment bases) after this logic has decided them.

pub mod bounce;
pub mod cpuid;
pub mod emulate;
pub mod guest_mem;
pub mod hypercall_page;
pub mod io_ports;
pub mod ptwr;
pub mod runstate;
pub mod vcpu;
