#!/bin/sh
# Whole-process `-a` timings of two fwup programs (C fwup and fwup-rs) on the shapes of the
# `apply_delta_crypto` criterion bench: a 64 MiB pseudorandom target (edits, an insertion,
# a new 1 MiB tail) applied to a regular image file
#
#   * delta: as an `xdelta3 -e -A -S` patch against the 64 MiB source already on the
#     destination (`delta-source-raw-offset/count`), written after it;
#   * xts / cbc: whole, with `raw_write(0, "cipher=aes-xts-plain64" / "aes-cbc-plain", ...)`.
#
#   nerveshub-fwup/benches/apply_delta_crypto_vs_fwup.sh FWUP_A FWUP_B [RUNS] [DIR]
#
# FWUP_A makes the archives (`-c -1`); both programs apply the same archives, RUNS times each
# (default 5), alternating which goes first. Prints, per case and program, the median wall
# time, the median CPU time (user + sys), the throughput of target bytes at the median wall
# time, and whether every output image of both programs had the same SHA-256. Needs python3,
# xdelta3 and zip. DIR (default: a new temporary directory) keeps the inputs and outputs.
# With SYNC_AFTER=1 in the environment, `sync out.img` (fsync) runs inside the timing after
# each program: fwup-rs fdatasyncs the image file before exiting, C fwup 1.16 does not.
set -eu

a=$1
b=$2
runs=${3:-5}
dir=${4:-$(mktemp -d)}
mkdir -p "$dir"
cd "$dir"
dir=$(pwd)

python3 - <<'EOF'
import random
n = 64 << 20
source = random.Random(1).randbytes(n)
target = bytearray(source)
target[4096:4106] = b"CHANGED!!!"
target[20 << 20:20 << 20] = b"inserted " * 1000
del target[n - (1 << 20):]
target += random.Random(2).randbytes(1 << 20)
open("source.bin", "wb").write(source)
open("rootfs.img", "wb").write(target)
EOF
blocks=$((64 << 20 >> 9))
bytes=$(stat -c %s rootfs.img)

cat > delta.conf <<EOF
file-resource rootfs.img { host-path = "$dir/rootfs.img" }
task upgrade {
  on-resource rootfs.img {
    delta-source-raw-offset = 0
    delta-source-raw-count = $blocks
    raw_write($blocks)
  }
}
EOF
for cipher in xts:aes-xts-plain64:$(printf 'ab%.0s' $(seq 64)) \
              cbc:aes-cbc-plain:$(printf 'cd%.0s' $(seq 32)); do
    IFS=: read -r name c secret <<EOF
$cipher
EOF
    cat > "$name.conf" <<EOF
file-resource rootfs.img { host-path = "$dir/rootfs.img" }
task complete {
  on-resource rootfs.img { raw_write(0, "cipher=$c", "secret=$secret") }
}
EOF
done

for name in delta xts cbc; do
    SOURCE_DATE_EPOCH=1700000000 "$a" -c -1 -q -f "$name.conf" -o "$name.fw"
done
# The delta archive: the full archive with data/rootfs.img replaced by the patch (fwup's
# README, "Delta firmware updates").
mkdir -p patch/data
xdelta3 -e -A -S -f -s source.bin rootfs.img patch/data/rootfs.img
(cd patch && zip -q "$dir/delta.fw" data/rootfs.img)

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

for case in delta:upgrade xts:complete cbc:complete; do
    name=${case%%:*}
    task=${case#*:}
    : > "$name.times-a"
    : > "$name.times-b"
    : > "$name.sums"
    i=1
    while [ "$i" -le "$runs" ]; do
        if [ $((i % 2)) -eq 1 ]; then order="a b"; else order="b a"; fi
        for who in $order; do
            if [ "$who" = a ]; then prog=$a; else prog=$b; fi
            rm -f out.img
            if [ "$name" = delta ]; then cp source.bin out.img; fi
            /usr/bin/time -f "%e %U %S" -o time.txt sh -c \
                '"$0" "$@" && if [ -n "${SYNC_AFTER:-}" ]; then sync out.img; fi' \
                "$prog" -a -q -d out.img -i "$name.fw" -t "$task"
            awk '{ print $1, $2 + $3 }' time.txt >> "$name.times-$who"
            sha256sum out.img | awk -v w="$who" '{ print w, $1 }' >> "$name.sums"
        done
        i=$((i + 1))
    done
    if [ "$(awk '{ print $2 }' "$name.sums" | sort -u | wc -l)" -eq 1 ]; then
        same="identical ($(awk 'NR == 1 { print substr($2, 1, 16) }' "$name.sums")…)"
        if [ "$name" = delta ]; then
            # The patched image must be the source followed by the target.
            want=$(cat source.bin rootfs.img | sha256sum | awk '{ print $1 }')
            if [ "$(awk 'NR == 1 { print $2 }' "$name.sums")" = "$want" ]; then
                same="$same, = source + target"
            else
                same="$same, NOT source + target"
            fi
        fi
    else
        same="DIFFERENT (see $dir/$name.sums)"
    fi
    for who in a b; do
        if [ "$who" = a ]; then prog=$a; else prog=$b; fi
        wall=$(awk '{ print $1 }' "$name.times-$who" | median)
        cpu=$(awk '{ print $2 }' "$name.times-$who" | median)
        all=$(awk '{ printf "%s%s", sep, $1; sep = " " }' "$name.times-$who")
        echo "$name $prog: median ${wall} s wall ($all), ${cpu} s CPU," \
            "$(awk -v b="$bytes" -v t="$wall" 'BEGIN { printf "%.0f", b / t / 1048576 }') MiB/s"
    done
    echo "$name outputs: $same"
done
