# Reading a Linux bzImage's setup header from shell (the x86 boot protocol, 2.08 and later:
# what dom0-tools/src/kernel_file/bzimage.rs reads). Sourced by scripts/boot-domu.sh and
# scripts/linux-tests.sh.

# The little-endian unsigned number of 1, 2 or 4 bytes ($3) at byte $2 of file $1.
bz_uint() { od -An -t "u$3" -j "$2" -N "$3" "$1" | tr -d ' '; }

# $3 bytes from byte $2 of file $1, to standard output.
bz_bytes() { dd if="$1" bs=1M iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none; }

# Whether $1 has a setup header with the payload fields ("HdrS" at 0x202, version >= 2.08).
bz_is_bzimage() {
    [ "$(od -An -c -j 514 -N 4 "$1" | tr -d ' ')" = HdrS ] && [ "$(bz_uint "$1" 518 2)" -ge 520 ]
}

# Where the payload starts: (setup_sects + 1) * 512 (a setup_sects of 0 means 4) plus
# payload_offset.
bz_payload_start() {
    local sects
    sects=$(bz_uint "$1" 497 1)
    [ "$sects" -ne 0 ] || sects=4
    echo $(((sects + 1) * 512 + $(bz_uint "$1" 584 4)))
}

# payload_length.
bz_payload_length() { bz_uint "$1" 588 4; }
