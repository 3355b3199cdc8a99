use super::*;
use alloc::vec;
use core::cell::RefCell;
use std::rc::Rc;

use dom0_tools::blkback::grants::{GrantCopy, GrantSegment};
use dom0_tools::cpio::Archive;
use dom0_tools::hv::{DomainInfo, PhysInfo, VersionInfo};
use dom0_tools::shared_page::{AtomicRing, Page};
use guest_abi::arch::VcpuGuestContext;
use guest_abi::domctl::{DominfFlags, XenDomctlCreatedomain};
use guest_abi::sched::ShutdownReason;
use guest_abi::{DomId, Mfn, Pfn, VcpuId, XenError};

/// A hypervisor with only dom0: enough for the commands that need no new domain.
struct OnlyDom0;

impl GrantCopy for OnlyDom0 {
    fn copy_from_guest(&mut self, _: DomId, _: &[GrantSegment], _: &mut [u8]) -> bool {
        false
    }
    fn copy_to_guest(&mut self, _: DomId, _: &[GrantSegment], _: &[u8]) -> bool {
        false
    }
}

impl Hypervisor for OnlyDom0 {
    type Ring = AtomicRing<Box<Page>>;
    type GrantPage = AtomicRing<Box<Page>>;

    fn create_domain(&mut self, _: &XenDomctlCreatedomain) -> Result<DomId, XenError> {
        Err(XenError::NoSys)
    }
    fn destroy_domain(&mut self, _: DomId) -> Result<(), XenError> {
        Err(XenError::Srch)
    }
    fn pause_domain(&mut self, _: DomId) -> Result<(), XenError> {
        Err(XenError::Srch)
    }
    fn unpause_domain(&mut self, _: DomId) -> Result<(), XenError> {
        Err(XenError::Srch)
    }
    fn domain_info(&mut self, dom: DomId) -> Result<DomainInfo, XenError> {
        match dom.0 {
            0 => Ok(DomainInfo {
                id: dom,
                flags: DominfFlags::RUNNING,
                shutdown_code: 0,
                tot_pages: 16384,
                max_pages: 16384,
                shared_info_frame: Mfn(1),
                cpu_time_ns: 0,
                online_vcpus: 1,
            }),
            _ => Err(XenError::Srch),
        }
    }
    fn list_domains(&mut self) -> Result<Vec<DomainInfo>, XenError> {
        Ok(vec![self.domain_info(DomId(0))?])
    }
    fn set_max_mem(&mut self, _: DomId, _: u64) -> Result<(), XenError> {
        Err(XenError::NoSys)
    }
    fn set_max_vcpus(&mut self, _: DomId, _: u32) -> Result<(), XenError> {
        Err(XenError::NoSys)
    }
    fn set_vcpu_context(
        &mut self,
        _: DomId,
        _: VcpuId,
        _: &VcpuGuestContext,
    ) -> Result<(), XenError> {
        Err(XenError::NoSys)
    }
    fn hypercall_init(&mut self, _: DomId, _: Mfn) -> Result<(), XenError> {
        Err(XenError::NoSys)
    }
    fn populate_physmap(&mut self, _: DomId, _: &[Pfn], _: &mut [Mfn]) -> Result<(), XenError> {
        Err(XenError::NoSys)
    }
    fn write_frame(&mut self, _: DomId, _: Mfn, _: usize, _: &[u8]) -> Result<(), XenError> {
        Err(XenError::NoSys)
    }
    fn pin_l4_table(&mut self, _: DomId, _: Mfn) -> Result<(), XenError> {
        Err(XenError::NoSys)
    }
    fn evtchn_alloc_unbound(&mut self, _: DomId, _: DomId) -> Result<EvtchnPort, XenError> {
        Err(XenError::NoSys)
    }
    fn evtchn_bind_interdomain(&mut self, _: DomId, _: EvtchnPort) -> Result<EvtchnPort, XenError> {
        Err(XenError::NoSys)
    }
    fn evtchn_close(&mut self, _: EvtchnPort) -> Result<(), XenError> {
        Ok(())
    }
    fn evtchn_send(&mut self, _: EvtchnPort) -> Result<(), XenError> {
        Ok(())
    }
    fn map_console(&mut self, _: DomId, _: Mfn) -> Result<Self::Ring, XenError> {
        Err(XenError::NoSys)
    }
    fn unmap_console(&mut self, _: Self::Ring) {}
    fn map_grant(&mut self, _: DomId, _: u32) -> Result<Self::GrantPage, XenError> {
        Err(XenError::NoSys)
    }
    fn unmap_grant(&mut self, _: Self::GrantPage) {}
    fn remote_shutdown(&mut self, _: DomId, _: ShutdownReason) -> Result<(), XenError> {
        Err(XenError::Srch)
    }
    fn physinfo(&mut self) -> Result<PhysInfo, XenError> {
        Ok(PhysInfo {
            nr_cpus: 1,
            total_pages: 131_072,
            free_pages: 100_000,
        })
    }
    fn version(&mut self) -> Result<VersionInfo, XenError> {
        Ok(VersionInfo {
            major: 4,
            minor: 17,
            extra: ".0".into(),
        })
    }
}

/// A terminal that types `input` (each chunk after the previous one is read, one chunk
/// per `read`) and a clock that `wait` moves on.
#[derive(Default)]
struct Terminal {
    input: VecDeque<Vec<u8>>,
    output: Rc<RefCell<Vec<u8>>>,
    now: u64,
    waits: u32,
    dom_exc: bool,
    /// `VIRQ_DOM_EXC` is pending (fired while no `wait` ran).
    dom_exc_pending: bool,
}

impl Machine for Terminal {
    fn write(&mut self, bytes: &[u8]) {
        self.output.borrow_mut().extend_from_slice(bytes);
    }
    fn read(&mut self, buf: &mut [u8]) -> usize {
        let Some(chunk) = self.input.pop_front() else {
            return 0;
        };
        let n = chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        if n < chunk.len() {
            self.input.push_front(chunk[n..].to_vec());
        }
        n
    }
    fn wait(&mut self, _: &[EvtchnPort], millis: u64) -> bool {
        self.now += millis.max(1);
        self.waits += 1;
        false
    }
    fn now_ms(&mut self) -> u64 {
        self.now
    }
    fn has_dom_exc(&self) -> bool {
        self.dom_exc
    }
    fn take_dom_exc(&mut self) -> bool {
        core::mem::take(&mut self.dom_exc_pending)
    }
}

type TestSession = Session<OnlyDom0, Archive<'static>, Terminal>;

fn session(typed: &[&[u8]]) -> (TestSession, Rc<RefCell<Vec<u8>>>) {
    let terminal = Terminal {
        input: typed.iter().map(|c| c.to_vec()).collect(),
        dom_exc: true,
        ..Terminal::default()
    };
    let output = terminal.output.clone();
    let ts = Toolstack::new(OnlyDom0, Archive::default());
    (Session::new(ts, terminal), output)
}

fn text(output: &Rc<RefCell<Vec<u8>>>) -> String {
    String::from_utf8(output.borrow().clone()).unwrap()
}

#[test]
fn terminal_session_echoes_edits_and_answers() {
    let (mut s, out) = session(&[b"lisx", b"\x7ft\r", b"frob\r", b"poweroff\r"]);
    s.interact();
    let text = text(&out);
    assert!(text.starts_with("xl> lisx\x08 \x08t\nName "), "{text:?}");
    assert!(text.contains("Domain-0                                     0    64"));
    assert!(text.contains(
        "xl> frob\nerror: unknown command 'frob'; type 'help' for the list of commands\nxl> "
    ));
    assert!(text.ends_with("xl> poweroff\n"), "{text:?}");
}

#[test]
fn scripts_show_each_command_and_stop_at_poweroff() {
    let (mut s, out) = session(&[]);
    s.run_script("# a comment\ninfo\ndestroy 5\npoweroff\nlist\n");
    let text = text(&out);
    assert!(
        text.starts_with("xl> # a comment\nxl> info\nmachine "),
        "{text}"
    );
    assert!(text.contains("free_pages             : 100000\n"));
    assert!(text.contains("xl> destroy 5\nerror: domain 5 does not exist\nxl> poweroff\n"));
    assert!(!text.contains("xl> list"), "nothing runs after poweroff");
}

#[test]
fn sleep_waits_its_time_in_ticks() {
    let (mut s, _) = session(&[]);
    s.run_script("sleep 0.25");
    let m = s.machine();
    assert_eq!(m.now, 250);
    assert_eq!(m.waits, 25, "ticks of {TICK_MS} ms");
}

#[test]
fn ctrl_c_interrupts_a_sleep_and_keeps_what_was_typed_after() {
    let (mut s, out) = session(&[b"sleep 100\r", b"", b"\x03inf", b"o\rpoweroff\r"]);
    s.interact();
    assert!(s.machine().now < 1000);
    let text = text(&out);
    assert!(
        text.contains("xl> sleep 100\n^C\nxl> info\nmachine "),
        "{text:?}"
    );
}

#[test]
fn wait_for_gives_up_with_one_line() {
    let (mut s, out) = session(&[]);
    s.run_script("wait-for nobody\nwait-for 0");
    let text = text(&out);
    assert!(
        text.contains("xl> wait-for nobody\nerror: wait-for: gave up after 60 s\nxl> wait-for 0\n"),
        "{text}"
    );
    assert!(s.machine().now >= WAIT_FOR_MS);
    assert!(
        s.machine().now < WAIT_FOR_MS + 100,
        "wait-for 0 is done at once"
    );
}

#[test]
fn output_while_typing_goes_above_the_prompt() {
    let (mut s, out) = session(&[]);
    // Type two characters, then something prints, then the line is finished.
    let mut echo = Vec::new();
    s.at_prompt = true;
    for &b in b"li" {
        s.editor.key(b, &mut echo);
    }
    s.print(b"[web] hello\n");
    assert_eq!(text(&out), "\r\x1b[K[web] hello\nxl> li");
    out.borrow_mut().clear();
    s.print(b"[web] partial");
    assert_eq!(text(&out), "\r\x1b[K[web] partial\nxl> li");
}

#[test]
fn a_script_cannot_attach_a_console() {
    let (mut s, out) = session(&[]);
    s.run_script("console 0");
    assert!(text(&out).contains("domain 0 has no console ring here"));
    assert_eq!(s.toolstack().attached(), None);
}

#[test]
fn without_dom_exc_the_domains_are_checked_every_half_second() {
    let (mut s, _) = session(&[]);
    s.machine().dom_exc = false;
    s.run_script("sleep 2");
    // Checked after the first tick (10 ms), then at 510, 1010 and 1510 ms.
    assert_eq!(s.next_check_ms, 1510 + DOM_EXC_FALLBACK_MS);
}

#[test]
fn a_dom_exc_pending_from_before_is_taken_by_a_wait_for_that_does_not_wait() {
    let (mut s, _) = session(&[]);
    // A domain stopped while commands ran back to back; `wait-for 0` is done at once.
    s.machine().dom_exc_pending = true;
    s.run_script("wait-for 0");
    assert_eq!(s.machine().waits, 0);
    assert!(!s.machine().dom_exc_pending);
}

#[test]
fn script_option_on_the_command_line() {
    assert_eq!(script_path("quiet script"), Some("/script"));
    assert_eq!(
        script_path("script=/etc/test.script x"),
        Some("/etc/test.script")
    );
    assert_eq!(script_path("scripts noscript"), None);
    assert_eq!(script_path(""), None);
}
