//! `evtchn.*`: event-channel abuse. Ports out of range, other domains' ports, closing twice,
//! binding the same VIRQ twice, VIRQs and vCPUs that do not exist, and a flood of bindings
//! until the port table is full (then every port is closed again and the hypervisor must
//! still answer).

use guest_abi::event_channel::{
    EvtchnBindInterdomain, EvtchnBindIpi, EvtchnBindVcpu, EvtchnBindVirq, EvtchnOp,
};
use guest_abi::runtime::hypercall;
use guest_abi::xen::Virq;
use guest_abi::{XenError, println};

use crate::report::{OK, Report, err};

fn ret(r: Result<u64, XenError>) -> i64 {
    r.map_or_else(XenError::to_ret, |v| v as i64)
}

fn bind_virq(virq: u32, vcpu: u32) -> (i64, u32) {
    let mut b = EvtchnBindVirq {
        virq,
        vcpu,
        port: 0,
    };
    (ret(hypercall::event_channel_op(&mut b)), b.port)
}

fn bind_ipi() -> (i64, u32) {
    let mut b = EvtchnBindIpi { vcpu: 0, port: 0 };
    (ret(hypercall::event_channel_op(&mut b)), b.port)
}

fn close(port: u32) -> i64 {
    ret(hypercall::evtchn_port_op(EvtchnOp::Close, port))
}

pub fn run(r: &mut Report) {
    for (name, op, port) in [
        (
            "evtchn.close port 5000 (beyond the ABI)",
            EvtchnOp::Close,
            5000,
        ),
        ("evtchn.send port 4096", EvtchnOp::Send, 4096),
        ("evtchn.unmask port 2^31", EvtchnOp::Unmask, 1 << 31),
        (
            "evtchn.close port 4095 (never allocated)",
            EvtchnOp::Close,
            4095,
        ),
        ("evtchn.close port 0 (reserved)", EvtchnOp::Close, 0),
    ] {
        r.ret(
            name,
            ret(hypercall::evtchn_port_op(op, port)),
            err(XenError::Inval),
        );
    }
    let (b, port) = bind_virq(Virq::Timer as u32, 0);
    r.ret("evtchn.bind_virq timer", b, OK);
    let (again, _) = bind_virq(Virq::Timer as u32, 0);
    r.ret("evtchn.bind_virq timer twice", again, err(XenError::Exist));
    r.ret("evtchn.close the timer port", close(port), OK);
    r.ret(
        "evtchn.close the timer port twice",
        close(port),
        err(XenError::Inval),
    );
    r.ret(
        "evtchn.bind_virq 24 (no such VIRQ)",
        bind_virq(24, 0).0,
        err(XenError::Inval),
    );
    r.ret(
        "evtchn.bind_virq timer on vCPU 7 (no such vCPU)",
        bind_virq(Virq::Timer as u32, 7).0,
        err(XenError::NoEnt),
    );
    r.ret(
        "evtchn.bind_virq a global VIRQ on vCPU 1",
        bind_virq(Virq::Console as u32, 1).0,
        err(XenError::Inval),
    );
    let mut ipi = EvtchnBindIpi { vcpu: 9, port: 0 };
    r.ret(
        "evtchn.bind_ipi to vCPU 9 (no such vCPU)",
        ret(hypercall::event_channel_op(&mut ipi)),
        err(XenError::NoEnt),
    );
    let mut inter = EvtchnBindInterdomain {
        remote_dom: crate::privs::NO_DOMAIN,
        _hole: 0,
        remote_port: 1,
        local_port: 0,
    };
    r.ret(
        "evtchn.bind_interdomain to a domain that does not exist",
        ret(hypercall::event_channel_op(&mut inter)),
        err(XenError::Srch),
    );
    let (b, ipi_port) = bind_ipi();
    let mut inter = EvtchnBindInterdomain {
        remote_dom: 0x7ff0,
        _hole: 0,
        remote_port: ipi_port,
        local_port: 0,
    };
    r.ret(
        "evtchn.bind_interdomain to our own IPI port",
        if b < 0 {
            b
        } else {
            ret(hypercall::event_channel_op(&mut inter))
        },
        err(XenError::Inval),
    );
    let mut vcpu = EvtchnBindVcpu {
        port: ipi_port,
        vcpu: 0,
    };
    r.ret(
        "evtchn.bind_vcpu an IPI port (not movable)",
        ret(hypercall::event_channel_op(&mut vcpu)),
        err(XenError::Inval),
    );
    let mut vcpu = EvtchnBindVcpu {
        port: ipi_port,
        vcpu: 7,
    };
    r.ret(
        "evtchn.bind_vcpu to vCPU 7 (no such vCPU)",
        ret(hypercall::event_channel_op(&mut vcpu)),
        err(XenError::NoEnt),
    );
    let _ = close(ipi_port);
    every_virq(r);
    flood(r);
}

/// Binds every VIRQ (0–23) on vCPU 0 once, then closes them all.
fn every_virq(r: &mut Report) {
    const NAMES: [&str; 24] = [
        "evtchn.bind_virq 0 (timer)",
        "evtchn.bind_virq 1 (debug)",
        "evtchn.bind_virq 2 (console)",
        "evtchn.bind_virq 3 (dom_exc)",
        "evtchn.bind_virq 4 (tbuf)",
        "evtchn.bind_virq 5 (unused)",
        "evtchn.bind_virq 6 (debugger)",
        "evtchn.bind_virq 7 (xenoprof)",
        "evtchn.bind_virq 8 (con_ring)",
        "evtchn.bind_virq 9 (pcpu_state)",
        "evtchn.bind_virq 10 (mem_event)",
        "evtchn.bind_virq 11 (argo)",
        "evtchn.bind_virq 12 (enomem)",
        "evtchn.bind_virq 13 (xenpmu)",
        "evtchn.bind_virq 14",
        "evtchn.bind_virq 15",
        "evtchn.bind_virq 16 (arch 0)",
        "evtchn.bind_virq 17 (arch 1)",
        "evtchn.bind_virq 18 (arch 2)",
        "evtchn.bind_virq 19 (arch 3)",
        "evtchn.bind_virq 20 (arch 4)",
        "evtchn.bind_virq 21 (arch 5)",
        "evtchn.bind_virq 22 (arch 6)",
        "evtchn.bind_virq 23 (arch 7)",
    ];
    let mut ports = [0u32; 24];
    for (virq, name) in NAMES.iter().enumerate() {
        let (b, port) = bind_virq(virq as u32, 0);
        r.ret(name, b, OK);
        ports[virq] = if b == 0 { port } else { 0 };
    }
    for port in ports.into_iter().filter(|&p| p != 0) {
        let _ = close(port);
    }
}

/// Binds IPIs until the port table is full, then closes them all.
fn flood(r: &mut Report) {
    // The ports bound, to close them again (16 KiB of the 64 KiB stack).
    let mut ports = [0u32; 4096];
    let mut n = 0;
    let mut last = 0;
    while n < ports.len() {
        let (b, port) = bind_ipi();
        if b < 0 {
            last = b;
            break;
        }
        ports[n] = port;
        n += 1;
    }
    println!("attack: bound {n} IPI ports, then {last}");
    r.check(
        "evtchn.flood of IPI bindings ends with ENOSPC",
        n >= 100 && last == XenError::NoSpc.to_ret(),
        format_args!("{n} ports, then {last}"),
    );
    let mut bad = 0;
    for &port in &ports[..n] {
        if close(port) != 0 {
            bad += 1;
        }
    }
    r.check(
        "evtchn.every flooded port closes",
        bad == 0,
        format_args!("{bad} of {n} closes failed"),
    );
    let (b, port) = bind_ipi();
    r.ret("evtchn.bind_ipi after the flood", b, OK);
    let _ = close(port);
}
