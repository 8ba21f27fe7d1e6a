#!/bin/sh
# Builds the example firmware: v1.fw (1.0.0) and v2.fw (2.0.0), both signed, from fwup.conf
# beside this script, into DIR (default: the current directory). The signing key pair
# fwup-key.priv / fwup-key.pub is made in DIR on the first run and reused after.
#
#   examples/firmware/build.sh [DIR]
#
# Uses `fwup-rs` from PATH (`cargo install --path examples`), or the program in $FWUP (C fwup
# works as well). Each slot's "root file system" is a stand-in: a version banner followed by
# 1 MiB of random bytes, so that v1 and v2 differ everywhere.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-.}
fwup=${FWUP:-fwup-rs}

mkdir -p "$dir"
cd "$dir"
# fwup resolves relative host-paths against fwup.conf's directory: hand it absolute ones.
work=$(pwd)

if [ ! -f fwup-key.priv ]; then
    "$fwup" -g >/dev/null
    echo "made the signing key pair fwup-key.priv / fwup-key.pub (keep the .priv secret)"
fi

mkdir -p build
printf 'bootdelay=0\nuenvcmd=echo simulated Nerves device\n' > build/uEnv.txt

for version in 1.0.0 2.0.0; do
    rootfs="$work/build/rootfs-$version.img"
    {
        printf 'gizmo root file system, version %s\n' "$version"
        head -c 1048576 /dev/urandom
    } > "$rootfs"
    out="v${version%%.*}.fw"
    VERSION=$version ROOTFS=$rootfs UENV=$work/build/uEnv.txt \
        "$fwup" -c -f "$here/fwup.conf" -s fwup-key.priv -o "$out"
    echo "built $dir/$out (version $version, signed with fwup-key.priv)"
done
