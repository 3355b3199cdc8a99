//! The console session: the toolstack's main loop (`docs/TOOLSTACK.md`), over a
//! [`Machine`] that reads and writes the hypervisor console and sleeps until an event.
//!
//! On a terminal it prints the prompt [`PROMPT`], edits the line typed ([`LineEditor`]),
//! runs it with [`Toolstack::execute`] and prints the answer; errors are one line starting
//! `error: `. From a script it prints each line after the prompt, as if typed, and runs it.
//! Between keystrokes, and while a command waits (`sleep`, `wait-for`, `console`), it
//! sleeps up to [`TICK_MS`] at a time and, on each wake, prints what the domains wrote on
//! their consoles (`[name] line`), when `VIRQ_DOM_EXC` fired, what the shutdown policy
//! did, and the restarts it scheduled once they are due. Domain output that arrives while a line is being typed is printed above
//! it, and the prompt and the line are drawn again.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use dom0_tools::console::ESCAPE;
use dom0_tools::files::Files;
use dom0_tools::hv::Hypervisor;
use dom0_tools::{Toolstack, Wait};
use guest_abi::EvtchnPort;

use super::editor::{Key, LineEditor};

/// The prompt.
pub const PROMPT: &str = "xl> ";
/// Longest sleep between two looks at the console and the event channels.
pub const TICK_MS: u64 = 10;
/// How long `wait-for` waits before giving up.
pub const WAIT_FOR_MS: u64 = 60_000;
/// Without `VIRQ_DOM_EXC`, how often the domains are checked for a shutdown.
pub const DOM_EXC_FALLBACK_MS: u64 = 500;

const CTRL_C: u8 = 0x03;

/// What the session needs from the machine.
pub trait Machine {
    /// Writes to the console.
    fn write(&mut self, bytes: &[u8]);
    /// Reads what was typed, without waiting; returns how many bytes.
    fn read(&mut self, buf: &mut [u8]) -> usize;
    /// Sleeps until an event on one of `ports` or `VIRQ_DOM_EXC`, or for `millis`;
    /// returns whether `VIRQ_DOM_EXC` fired.
    fn wait(&mut self, ports: &[EvtchnPort], millis: u64) -> bool;
    /// Milliseconds since some fixed point.
    fn now_ms(&mut self) -> u64;
    /// Whether [`Self::wait`] reports `VIRQ_DOM_EXC` (if not, the session checks the
    /// domains every [`DOM_EXC_FALLBACK_MS`]).
    fn has_dom_exc(&self) -> bool;
    /// Without waiting: whether `VIRQ_DOM_EXC` fired since the last [`Self::wait`] (and
    /// takes it).
    fn take_dom_exc(&mut self) -> bool;
}

/// What to do after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Read the next command.
    Continue,
    /// Power the machine off.
    PowerOff,
}

/// Where commands come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Input {
    Terminal,
    Script,
}

/// The toolstack on the console.
pub struct Session<H: Hypervisor, F: Files, M: Machine> {
    ts: Toolstack<H, F>,
    machine: M,
    editor: LineEditor,
    /// Bytes typed and not yet used.
    typed: VecDeque<u8>,
    /// The prompt and the line being edited are on the screen.
    at_prompt: bool,
    next_check_ms: u64,
}

impl<H: Hypervisor, F: Files, M: Machine> Session<H, F, M> {
    /// A session running `ts` on `machine`.
    pub fn new(ts: Toolstack<H, F>, machine: M) -> Self {
        Self {
            ts,
            machine,
            editor: LineEditor::default(),
            typed: VecDeque::new(),
            at_prompt: false,
            next_check_ms: 0,
        }
    }

    /// The toolstack.
    #[cfg(test)]
    pub fn toolstack(&mut self) -> &mut Toolstack<H, F> {
        &mut self.ts
    }

    /// The machine.
    #[cfg(test)]
    pub fn machine(&mut self) -> &mut M {
        &mut self.machine
    }

    /// Prints `text`; if the prompt is showing, above it, then draws the prompt again.
    pub fn print(&mut self, text: &[u8]) {
        if text.is_empty() {
            return;
        }
        if self.at_prompt {
            self.machine.write(b"\r\x1b[K");
        }
        self.machine.write(text);
        if self.at_prompt {
            if !text.ends_with(b"\n") {
                self.machine.write(b"\n");
            }
            self.machine.write(PROMPT.as_bytes());
            let line = String::from(self.editor.text());
            self.machine.write(line.as_bytes());
        }
    }

    /// Runs the commands of a script (lines of `text`) until its end or a `poweroff`.
    pub fn run_script(&mut self, text: &str) {
        for line in text.lines() {
            self.print(format!("{PROMPT}{line}\n").as_bytes());
            if self.run_line(line, Input::Script) == Flow::PowerOff {
                return;
            }
        }
    }

    /// Reads commands from the terminal until `poweroff`.
    pub fn interact(&mut self) {
        loop {
            let line = self.read_line();
            if self.run_line(&line, Input::Terminal) == Flow::PowerOff {
                return;
            }
        }
    }

    /// Prompts and returns the next line typed.
    fn read_line(&mut self) -> String {
        self.machine.write(PROMPT.as_bytes());
        self.at_prompt = true;
        let mut echo = Vec::new();
        loop {
            while let Some(byte) = self.typed.pop_front() {
                let key = self.editor.key(byte, &mut echo);
                self.machine.write(&echo);
                echo.clear();
                match key {
                    Some(Key::Line(line)) => {
                        self.at_prompt = false;
                        return line;
                    }
                    Some(Key::Interrupt) => self.machine.write(PROMPT.as_bytes()),
                    None => {}
                }
            }
            if !self.take_typed() {
                self.tick(TICK_MS);
            }
        }
    }

    /// Moves what was typed into `typed`; returns whether there was anything.
    fn take_typed(&mut self) -> bool {
        let mut buf = [0u8; 64];
        let n = self.machine.read(&mut buf);
        self.typed.extend(&buf[..n]);
        n > 0
    }

    /// Sleeps up to `millis`, then prints the domains' output and handles stopped domains.
    fn tick(&mut self, millis: u64) {
        let fired = self.wait_events(millis);
        self.service(fired);
    }

    /// Sleeps up to `millis` until an event on a domain's port; not at all while disk
    /// requests are left over from the last poll (bounded work per wake-up).
    fn wait_events(&mut self, millis: u64) -> bool {
        let ports = self.ts.console_ports();
        let millis = if self.ts.disk_work_pending() {
            0
        } else {
            millis
        };
        self.machine.wait(&ports, millis)
    }

    /// Prints the domains' output and, if `VIRQ_DOM_EXC` `fired` (or, without it, now and
    /// then), applies the shutdown policy.
    fn service(&mut self, fired: bool) {
        let now = self.machine.now_ms();
        let check = if self.machine.has_dom_exc() {
            // Also a shutdown that came while no wait ran: commands back to back (a
            // `wait-for` whose text is already there does not wait) would leave it pending.
            fired | self.machine.take_dom_exc()
        } else {
            let due = now >= self.next_check_ms;
            if due {
                self.next_check_ms = now + DOM_EXC_FALLBACK_MS;
            }
            due
        };
        self.ts.set_time(now);
        let mut out = self.ts.poll_consoles();
        let mut lines = Vec::new();
        if check {
            lines = self.ts.on_dom_exc();
            // What the stopped domains printed last comes before what happened to them.
            out.extend(self.ts.poll_consoles());
        }
        // Restarts scheduled by the shutdown policy, once due.
        lines.extend(self.ts.run_restarts());
        for line in lines {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
        self.print(&out);
    }

    /// Runs one command line.
    fn run_line(&mut self, line: &str, input: Input) -> Flow {
        let now = self.machine.now_ms();
        self.ts.set_time(now);
        let reply = match self.ts.execute(line) {
            Ok(reply) => reply,
            Err(e) => {
                self.print(format!("error: {e}\n").as_bytes());
                return Flow::Continue;
            }
        };
        self.print(reply.output.as_bytes());
        match reply.wait {
            None => {}
            Some(Wait::PowerOff) => return Flow::PowerOff,
            Some(Wait::Sleep { millis }) => self.sleep(millis, input),
            Some(wait @ (Wait::Domain { .. } | Wait::Gone(_))) => self.wait_for(&wait, input),
            Some(wait @ Wait::Attached(_)) => self.attached(&wait, input),
        }
        Flow::Continue
    }

    /// Whether Ctrl-C was typed (on a terminal); other bytes stay typed ahead.
    fn interrupted(&mut self, input: Input) -> bool {
        if input == Input::Script {
            return false;
        }
        self.take_typed();
        match self.typed.iter().position(|&b| b == CTRL_C) {
            Some(i) => {
                self.typed.drain(..=i);
                self.print(b"^C\n");
                true
            }
            None => false,
        }
    }

    fn sleep(&mut self, millis: u64, input: Input) {
        let end = self.machine.now_ms().saturating_add(millis);
        loop {
            let now = self.machine.now_ms();
            if now >= end || self.interrupted(input) {
                return;
            }
            self.tick((end - now).min(TICK_MS));
        }
    }

    fn wait_for(&mut self, wait: &Wait, input: Input) {
        let end = self.machine.now_ms() + WAIT_FOR_MS;
        let mut fired = false;
        loop {
            // wait_done wants the latest output polled.
            self.service(fired);
            if self.ts.wait_done(wait) || self.interrupted(input) {
                return;
            }
            if self.machine.now_ms() >= end {
                let what = match wait {
                    Wait::Gone(_) => "waiting for the domain to shut down",
                    _ => "wait-for",
                };
                let msg = format!("error: {what}: gave up after {} s\n", WAIT_FOR_MS / 1000);
                self.print(msg.as_bytes());
                return;
            }
            fired = self.wait_events(TICK_MS);
        }
    }

    /// Attached to a domain's console: typed bytes go to it until Ctrl-] (or the domain
    /// goes away). A script has no terminal to attach, so it detaches at once.
    fn attached(&mut self, wait: &Wait, input: Input) {
        if input == Input::Script {
            self.ts.console_input(&[ESCAPE]);
            self.print(b"[detached: a script has no terminal]\n");
            return;
        }
        loop {
            self.take_typed();
            if !self.typed.is_empty() {
                // Up to a Ctrl-]; what follows it is for the prompt.
                let end = self.typed.iter().position(|&b| b == ESCAPE);
                let end = end.map_or(self.typed.len(), |i| i + 1);
                let bytes: Vec<u8> = self.typed.drain(..end).collect();
                if self.ts.console_input(&bytes).detached {
                    self.print(b"\n");
                }
            }
            if self.ts.wait_done(wait) {
                break;
            }
            self.tick(TICK_MS);
        }
        // What other domains printed meanwhile.
        let held = self.ts.poll_consoles();
        self.print(&held);
    }
}

/// The script the kernel command line asks for: `script` means `/script`, `script=PATH`
/// names it; `None` without either.
pub fn script_path(cmdline: &str) -> Option<&str> {
    cmdline
        .split_ascii_whitespace()
        .find_map(|word| match word {
            "script" => Some("/script"),
            _ => word.strip_prefix("script="),
        })
}

#[cfg(test)]
mod tests;
