# Sourced by the test scripts: a typist for the serial line of a QEMU run.
#
# type_when LOG MARKER TEXT [MARKER TEXT]...: for each pair, waits (at most 120 s) until LOG
# contains MARKER, then writes TEXT (a printf format) to stdout: a typist for the serial line.
type_when() {
    local log=$1 tries
    shift
    while [ $# -ge 2 ]; do
        tries=0
        until grep -qF -- "$1" "$log" 2>/dev/null; do
            tries=$((tries + 1))
            [ "$tries" -gt 240 ] && return
            sleep 0.5
        done
        # shellcheck disable=SC2059 # TEXT is a format on purpose (control characters)
        printf "$2"
        shift 2
    done
}
