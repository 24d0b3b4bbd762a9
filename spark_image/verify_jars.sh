#!/bin/sh
# Verify the JARs named in jars.lock and copy exactly those into a folder.
#
#   verify_jars.sh JARS_LOCK SOURCE_DIR DEST_DIR
#
# Runs inside the image build (spark_image/Dockerfile) on the JARs `make jars` fetched into
# .cache/jars; tests/test_spark_image.py runs it on the host. The sha256sum input is generated from
# the one manifest, so a JAR that is missing or differs by one byte fails the build, and no version
# or checksum is written anywhere else. JARs in SOURCE_DIR that the manifest does not name are left
# out. POSIX sh, awk and coreutils only: nothing is downloaded.
set -eu

if [ "$#" -ne 3 ]; then
    echo "usage: $0 JARS_LOCK SOURCE_DIR DEST_DIR" >&2
    exit 2
fi
lock=$1
src=$2
dest=$3
sums=$(mktemp)
trap 'rm -f "$sums"' EXIT

# "group:artifact:version  sha256" -> "sha256  SOURCE_DIR/artifact-version.jar" (Maven's file name).
awk -v dir="$src" '
    { sub(/#.*/, "") }
    NF == 0 { next }
    NF != 2 || split($1, c, ":") != 3 || $2 !~ /^[0-9a-fA-F]+$/ || length($2) != 64 {
        printf "%s:%d: expected \"group:artifact:version sha256\"\n", FILENAME, FNR > "/dev/stderr"
        exit 1
    }
    { printf "%s  %s/%s-%s.jar\n", tolower($2), dir, c[2], c[3] }
' "$lock" >"$sums"

if [ ! -s "$sums" ]; then
    echo "$lock names no JAR" >&2
    exit 1
fi
if ! sha256sum --check --strict "$sums"; then
    echo "a JAR differs from $lock (or is missing): run \`make jars\` on the host and rebuild" >&2
    exit 1
fi
mkdir -p "$dest"
while read -r _sum path; do
    cp "$path" "$dest/"
done <"$sums"
echo "verified $(wc -l <"$sums") JARs against $lock" >&2
