# The exit-time bound (docs/SECURITY.md, guarantee 17), for the QEMU suites to source.
#
# A run checked this way boots our hypervisor under `-icount shift=0` (one TSC tick is one
# guest instruction, so the figures are exact) with the option `exit-times`, which prints the
# longest single exit per kind when dom0 shuts down; `exit_times_check LOG` then fails unless
# the longest exit is within EXIT_TIME_MAX instructions.

# The bound, in instructions: above every honest exit seen (the longest, a destroydomain pass,
# is about 1 million) and far below what an unbounded one takes.
EXIT_TIME_MAX=${EXIT_TIME_MAX:-2000000}
# What to add to scripts/boot.sh's environment for a checked run.
EXIT_TIME_QEMU="-icount shift=0,sleep=off -cpu max,-x2apic"
EXIT_TIME_HV_ARGS="exit-times"

# Prints nothing and succeeds when LOG's longest exit is within the bound; otherwise prints
# why (the longest exit and its kind, or that the table is missing) and fails.
exit_times_check() {
    local log=$1 line ticks
    line=$(tr -d '\r' < "$log" | sed -n 's/^(HV) Longest exit: \([0-9]*\) ticks (\(.*\))$/\1 \2/p' | tail -n1)
    if [ -z "$line" ]; then
        echo "no exit-time table in the log"
        return 1
    fi
    ticks=${line%% *}
    if [ "$ticks" -gt "$EXIT_TIME_MAX" ]; then
        echo "an exit took $ticks instructions (${line#* }), bound $EXIT_TIME_MAX"
        return 1
    fi
}
