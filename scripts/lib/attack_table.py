#!/usr/bin/env python3
"""Rebuilds docs/SECURITY.md's attack tables from the serial logs of
`ATTACK_LOGS=DIR scripts/attack-tests.sh --all`: the per-group summary (between the lines
`| group | cases |` and `| **total**`) and the appendix of every case side by side (the table
after `## Appendix`). Only cases that run in all four configurations (dom0 and domU, ours and
Xen 4.17) are counted and listed; the domU-only groups (`ring.*`, `victim.*`) have their own
sections.

    python3 scripts/lib/attack_table.py DIR docs/SECURITY.md
"""
import os
import re
import sys

CONFIGS = [("dom0, ours", "attack-ours.log"), ("dom0, Xen 4.17", "attack-xen.log"),
           ("domU, ours", "attack-ours-domu.log"), ("domU, Xen 4.17", "attack-xen-domu.log")]
GROUPS = {
    "mmu": "page tables, frames, M2P, L4 slots, linear tables, pins, races, base pointers",
    "desc": "update_descriptor, set_gdt",
    "priv": "port I/O, MSRs, control registers, dom0-only operations",
    "trap": "handlers, callbacks, debug registers, segment bases",
    "user": "guest user mode",
    "args": "hostile pointers, counts, continuations, multicalls, unknown sub-ops",
    "evtchn": "ports, VIRQs (each of 0–23), double close, floods",
    "grant": "grant frames not RAM, DOMID_SELF, read-only and page-table grants, bad addresses and handles, pin and maptrack limits, version change while mapped",
    "dev": "the hypervisor's device frames and frames beyond the address width, device memory and PCI configuration as a domU, XENMEM_exchange arguments, the machine memory map",
}
LINE = re.compile(r"^(?:\[\w+\] )?(PASS|FAIL) ([a-z]+\..*)$")
GOT = re.compile(r"^got (.*), expected .*$")


def find_log(d, name):
    path = os.path.join(d, name)
    if not os.path.isfile(path):
        sys.exit(f"attack_table: no log {name} in {d}")
    return path


def cases(path):
    """The first pass's result of every case, in order."""
    seen = {}
    for line in open(path, errors="replace"):
        m = LINE.match(line.strip())
        if not m:
            continue
        # "name: got X, expected Y" or "name: what was seen"; names may hold ": " themselves.
        name, _, rest = m.group(2).rpartition(": ")
        rest = re.sub(r" \[differs from Xen on purpose\]$", "", rest)
        got = GOT.match(rest)
        if name and name not in seen and name.split(".")[0] in GROUPS:
            seen[name] = (m.group(1), got.group(1) if got else rest)
    return seen


def main():
    logdir, doc = sys.argv[1:3]
    runs = [cases(find_log(logdir, name)) for _, name in CONFIGS]
    names = [n for n in runs[0] if all(n in r for r in runs)]
    summary = ["| group | cases | " + " | ".join(c for c, _ in CONFIGS) + " |",
               "|---|---|---|---|---|---|"]
    totals = [0] * len(runs)
    for g, what in GROUPS.items():
        members = [n for n in names if n.split(".")[0] == g]
        passed = [sum(1 for n in members if r[n][0] == "PASS") for r in runs]
        totals = [t + p for t, p in zip(totals, passed)]
        summary.append(f"| `{g}.*` {what} | {len(members)} | " +
                       " | ".join(f"{p} pass" for p in passed) + " |")
    summary.append(f"| **total** | **{len(names)}** | " +
                   " | ".join(f"**{t} pass**" for t in totals) + " |")
    appendix = ["| case | " + " | ".join(c for c, _ in CONFIGS) + " |", "|---|---|---|---|---|"]
    for n in names:
        appendix.append(f"| {n} | " + " | ".join(r[n][1] for r in runs) + " |")
    text = open(doc).read()
    text = re.sub(r"\| group \| cases \|.*?\n\| \*\*total\*\*[^\n]*\n", "\n".join(summary) + "\n",
                  text, count=1, flags=re.S)
    head, sep, tail = text.partition("## Appendix")
    start = tail.index("| case |")
    end = start
    lines = tail[start:].split("\n")
    kept = 0
    for line in lines:
        if not line.startswith("|"):
            break
        kept += len(line) + 1
    tail = tail[:start] + "\n".join(appendix) + "\n" + tail[start + kept:]
    open(doc, "w").write(head + sep + tail)
    print(f"attack_table: {len(names)} cases, " +
          ", ".join(f"{c}: {t} pass" for (c, _), t in zip(CONFIGS, totals)))


main()
