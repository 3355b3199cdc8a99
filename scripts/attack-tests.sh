#!/usr/bin/env bash
# Boots the hostile guest guests/attack as dom0 and checks that every attack was refused as
# expected while the domain (and the hypervisor) kept running, then the fatal cases, each of
# which must crash the domain and nothing else.
#
#   scripts/attack-tests.sh            # on our hypervisor (scripts/boot.sh)
#   scripts/attack-tests.sh --xen      # on real Xen 4.17 (scripts/boot-xen.sh), the oracle
#   scripts/attack-tests.sh --both     # both
#   scripts/attack-tests.sh --domu     # as a domU on ours, created by our dom0 toolstack
#   scripts/attack-tests.sh --xen-domu # as a domU on Xen 4.17, created by our dom0 toolstack
#   scripts/attack-tests.sh --all      # dom0 and domU, on ours and on Xen
#
# On our hypervisor (under -icount shift=0 with the exit-time table, scripts/lib/exit_times.sh:
# no exit may take more than EXIT_TIME_MAX instructions): exit 0 (clean power off), at least
# MIN_CASES cases, every case PASS
# except the known findings listed in KNOWN_FINDINGS below (reported as XFAIL: a finding that
# starts passing is reported too, so the list can shrink), the guest alive afterwards. As a
# domU (the word `domu`: EPERM for dom0's operations), the dom0 kernel of dom0-tools creates it
# from its ramdisk next to a victim domain (guests/victim; the attack guest's word `victim`
# adds the cases against it) and the checks are the same (no fatal cases), plus: the victim
# reports itself intact afterwards (check_victim), and the console lines the attack guest
# fills with CR, escapes and high bytes reach the log escaped (check_console_escapes). On Xen:
# every case PASS (the guest's expectations are Xen's, with the word `xen` selecting Xen's
# answer where we differ on purpose), exit 0.
# Each fatal case (fatal=NAME) must end with the domain crashed: boot.sh exit 5, or
# boot-xen.sh exit 1, and never a hypervisor crash.
#
# Environment: ATTACK_TIMEOUT (seconds per boot, default 240), ATTACK_FATAL (space-separated
# fatal cases, default all), ATTACK_LOGS (directory for the serial logs).
# Prints one PASS/FAIL line per check and "N passed, N failed"; exit 0 when none failed.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 4
# shellcheck source=scripts/lib/exit_times.sh
source scripts/lib/exit_times.sh

# Cases our hypervisor gets wrong, known and reported (docs/SECURITY.md, "Findings").
KNOWN_FINDINGS=(
    # None: F1-F9 were fixed in 476c1c5 and d44f04b.
)
# And those only a domU sees.
KNOWN_FINDINGS_DOMU=(
    # None: F10-F12 were fixed in 731364f.
)
FATAL_CASES=(${ATTACK_FATAL:-iret-ring0-cs iret-noncanonical-rip iret-hypervisor-rip kernel-stack-in-hypervisor})
MIN_CASES=60
timeout_s=${ATTACK_TIMEOUT:-240}
logs=${ATTACK_LOGS:-$(mktemp -d)}
mkdir -p "$logs"

targets=(ours)
case "${1:-}" in
    "") ;;
    --xen) targets=(xen) ;;
    --both) targets=(ours xen) ;;
    --domu) targets=(ours-domu) ;;
    --xen-domu) targets=(xen-domu) ;;
    --all) targets=(ours xen ours-domu xen-domu) ;;
    *) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 4 ;;
esac

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "PASS $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

target_dir=$(cargo metadata --format-version 1 --no-deps 2>/dev/null \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
if ! cargo build -q -p attack -p victim --target x86_64-unknown-none --release; then
    echo "attack-tests.sh: cannot build guests/attack and guests/victim" >&2
    exit 4
fi
kernel="$target_dir/x86_64-unknown-none/release/attack"
victim_kernel="$target_dir/x86_64-unknown-none/release/victim"

# The dom0 kernel and a ramdisk that creates the victim, then the attack guest as a domU
# (`domu victim`, and `xen` for Xen's expectations) connected to it by the toolstack
# (`evtchn_peer`: the victim's id and the port it offers come as `remote=` and `port=`),
# waits for both to finish and powers off.
domu_ramdisk() {
    local dir=$logs/domu
    mkdir -p "$dir"
    for hv in ours xen; do
        local words="domu victim"
        [ "$hv" = xen ] && words="domu victim xen"
        # Kept after powering off, so that each wait-for below still finds it (one for a
        # domain that is gone waits its full 60 s).
        printf 'name = "attack"\nkernel = "/boot/attack"\nmemory = 32\ncmdline = "%s"\non_poweroff = "preserve"\nevtchn_peer = "victim"\n' \
            "$words" >"$dir/attack-$hv.cfg"
    done
    printf 'name = "victim"\nkernel = "/boot/victim"\nmemory = 32\ncmdline = "limit=%s"\non_poweroff = "preserve"\n' \
        $((timeout_s * 2)) >"$dir/victim.cfg"
    {
        echo "create /etc/xen/victim.cfg"
        echo 'wait-for victim "victim: ready"'
        echo "create /etc/xen/attack.cfg"
        # wait-for gives up after 60 s; the guest may need a few minutes under TCG.
        for _ in 1 2 3 4 5 6; do echo 'wait-for attack "attack: powering off"'; done
        echo 'wait-for victim "victim: done"'
        echo "destroy attack"
        echo "destroy victim"
        echo "sleep 2"
        echo "list"
    } >"$dir/script"
    cargo build -q --release -p dom0-tools --bin dom0 --target x86_64-unknown-none || return 1
    for hv in ours xen; do
        scripts/dom0-ramdisk.sh "$dir/ramdisk-$hv.cpio" boot/attack="$kernel" \
            boot/victim="$victim_kernel" etc/xen/victim.cfg="$dir/victim.cfg" \
            etc/xen/attack.cfg="$dir/attack-$hv.cfg" script="$dir/script" >/dev/null 2>&1 ||
            return 1
    done
}

# check_victim TARGET LOG: the victim was attacked while it ran, and found everything it owns
# intact afterwards (its pattern pages, M2P tags, grant entry, ports and loopback channel).
check_victim() {
    local target=$1 log=$2
    if ! grep -q '^\[victim\] victim: ready' "$log"; then
        fail "attack.$target.victim: the victim never got ready (log $log)"
    elif grep -q '^\[victim\] victim: PASS' "$log" && ! grep -q '^\[victim\] victim: FAIL' "$log"; then
        pass "attack.$target.victim: intact after the attack ($(sed -n 's/^\[victim\] victim: done: //p' "$log" | head -n 1))"
    else
        fail "attack.$target.victim: $(grep -m 1 -E '^\[victim\] victim: (FAIL|done)' "$log" || echo 'no verdict')"
    fi
}

# check_console_escapes TARGET LOG: the attack guest's console lines with CR, ESC, BS and bytes
# >= 0x80 ("... forged by attack") reach the serial log with those bytes escaped by dom0's
# console backend, so that no line, split where a terminal would start over, begins with a
# forged `[dom0]` or `xl>` prefix.
check_console_escapes() {
    local target=$1 log=$2 raw
    raw=$(sed 's/\r$//' "$log" | LC_ALL=C grep -a 'forged by attack')
    if [ -z "$raw" ]; then
        fail "attack.$target.console: the garbage lines are missing (log $log)"
    elif printf '%s\n' "$raw" | LC_ALL=C grep -aq $'[\r\x1b\x08\x80-\xff]'; then
        fail "attack.$target.console: CR, ESC, BS or bytes >= 0x80 reach the log unescaped"
    elif printf '%s\n' "$raw" | tr '\r' '\n' | grep -aqE '^(\[dom0\]|xl>) forged'; then
        fail "attack.$target.console: a line starts with a forged prefix"
    else
        pass "attack.$target.console: guest control bytes escaped, no forged line"
    fi
}

# boot TARGET LOG ARGS...: boots the attack guest; prints the exit status.
boot() {
    local target=$1 log=$2
    shift 2
    local dom0="$target_dir/x86_64-unknown-none/release/dom0"
    if [ "$target" = ours-domu ]; then
        HV_ARGS="dom0_mem=64M $EXIT_TIME_HV_ARGS" QEMU_EXTRA=$EXIT_TIME_QEMU \
            BOOT_TIMEOUT=$((timeout_s * 2)) BOOT_LOG=$log \
            scripts/boot.sh "$dom0" script -- "$logs/domu/ramdisk-ours.cpio" >/dev/null 2>&1
    elif [ "$target" = xen-domu ]; then
        # Xen's own warnings about refused requests are off: they would cut into the lines
        # dom0 prints for the guest.
        XEN_ARGS="dom0_mem=64M,max:64M guest_loglvl=none" BOOT_TIMEOUT=$((timeout_s * 2)) BOOT_LOG=$log \
            scripts/boot-xen.sh "$dom0" script -- "$logs/domu/ramdisk-xen.cpio" >/dev/null 2>&1
    elif [ "$target" = ours ] && [ $# -eq 0 ]; then
        # The whole case list under icount, with the exit-time table (exit_times_check).
        HV_ARGS=$EXIT_TIME_HV_ARGS QEMU_EXTRA=$EXIT_TIME_QEMU \
            BOOT_TIMEOUT=$timeout_s BOOT_LOG=$log scripts/boot.sh "$kernel" >/dev/null 2>&1
    elif [ "$target" = ours ]; then
        BOOT_TIMEOUT=$timeout_s BOOT_LOG=$log scripts/boot.sh "$kernel" "$@" >/dev/null 2>&1
    else
        BOOT_TIMEOUT=$timeout_s BOOT_LOG=$log scripts/boot-xen.sh "$kernel" xen "$@" \
            >/dev/null 2>&1
    fi
    echo $?
}

# is_known TARGET NAME: whether NAME is a known finding of TARGET.
is_known() {
    local target=$1 name=$2 k
    case $target in
        ours) known=("${KNOWN_FINDINGS[@]}") ;;
        ours-domu) known=("${KNOWN_FINDINGS[@]}" "${KNOWN_FINDINGS_DOMU[@]}") ;;
        *) return 1 ;;
    esac
    for k in "${known[@]}"; do
        [ "$k" = "$name" ] && return 0
    done
    return 1
}

case " ${targets[*]} " in
    *-domu*)
        if ! domu_ramdisk; then
            echo "attack-tests.sh: cannot build the dom0 kernel or its ramdisk" >&2
            exit 4
        fi ;;
esac

for target in "${targets[@]}"; do
    log="$logs/attack-$target.log"
    rc=$(boot "$target" "$log")
    # A domU's console lines come through dom0 prefixed with its name.
    tr -d '\r' <"$log" | sed 's/^\[attack\] //' >"$log.txt"
    if [ "$rc" = 0 ]; then
        pass "attack.$target: clean power off"
    else
        fail "attack.$target: exit status $rc (log $log)"
    fi
    cases=$(sed -nE 's/^attack: ([0-9]+) cases$/\1/p' "$log.txt" | tail -n 1)
    if [ "${cases:-0}" -ge "$MIN_CASES" ]; then
        pass "attack.$target: $cases cases ran"
    else
        fail "attack.$target: ${cases:-no} cases ran (at least $MIN_CASES expected)"
    fi
    if grep -q '^attack: alive, xen_version Some' "$log.txt"; then
        pass "attack.$target: the guest still runs after all cases"
    else
        fail "attack.$target: no sign of life after the cases"
    fi
    unexpected=0 xfail=0 fixed=0
    while IFS= read -r line; do
        name=${line#FAIL }
        name=${name%%: got *}
        if is_known "$target" "$name"; then
            xfail=$((xfail + 1))
            echo "XFAIL $line"
        else
            unexpected=$((unexpected + 1))
            echo "  $line"
        fi
    done < <(grep '^FAIL ' "$log.txt")
    if [ "$target" = ours ] || [ "$target" = ours-domu ]; then
        for k in "${KNOWN_FINDINGS[@]}"; do
            if grep -qF "PASS $k: " "$log.txt"; then
                fixed=$((fixed + 1))
                echo "  known finding now passes (remove it from KNOWN_FINDINGS): $k"
            fi
        done
    fi
    if [ "$unexpected" -eq 0 ]; then
        pass "attack.$target: every case refused as expected ($xfail known findings)"
    else
        fail "attack.$target: $unexpected cases not as expected"
    fi
    case $target in
        ours | ours-domu)
            # Every exit of the run within the bound (docs/SECURITY.md, guarantee 17).
            if why=$(exit_times_check "$log"); then
                pass "attack.$target: no exit took more than $EXIT_TIME_MAX instructions"
            else
                fail "attack.$target: $why"
            fi ;;
    esac
    case $target in
        *-domu)
            check_victim "$target" "$log"
            check_console_escapes "$target" "$log"
            continue ;;
    esac
    for name in "${FATAL_CASES[@]}"; do
        flog="$logs/attack-$target-$name.log"
        rc=$(boot "$target" "$flog" "fatal=$name")
        want=5
        [ "$target" = xen ] && want=1
        if [ "$rc" = "$want" ] && grep -q "attack: fatal case $name" "$flog" \
            && ! grep -q "FAIL attack.fatal" "$flog"; then
            pass "attack.$target.fatal.$name: the domain crashed, the hypervisor did not"
        else
            fail "attack.$target.fatal.$name: exit status $rc, expected $want (log $flog)"
        fi
    done
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
