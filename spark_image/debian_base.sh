#!/usr/bin/env bash
# Build a base image for spark_image/Dockerfile from Debian's own packages, without any container
# registry: mmdebstrap writes a Debian 12 (bookworm) minbase root file tree with Python 3.11 and
# OpenJDK 17, and `docker import` turns it into an image (the official debian:bookworm-slim is
# made the same way, by debuerreotype).
#
#   spark_image/debian_base.sh IMAGE_NAME [TARBALL]
#
# `make spark-image-base` runs it; then `make spark-image-build SPARK_IMAGE_BASE=IMAGE_NAME` builds
# the real image on it (the Dockerfile's PYTHON_BASE and JAVA_BASE). The base gives the Dockerfile
# what its default bases give it: `python3` 3.11 with `venv`, a Java 17 runtime at
# /opt/java/openjdk (a link to Debian's /usr/lib/jvm/java-17-openjdk-<arch>), CA certificates,
# tzdata, and `useradd`. Packages come from the apt sources of the machine that runs this (the
# Debian archive the host's apt uses), so nothing else is contacted. Runs as root (mmdebstrap's
# chroot mode). DOCKER (default docker) names the engine's client; with TARBALL the root file
# tree's tar file is kept there.
set -euo pipefail

if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then
    echo "usage: $0 IMAGE_NAME [TARBALL]" >&2
    exit 2
fi
image=$1
docker=${DOCKER:-docker}
command -v mmdebstrap >/dev/null || {
    echo "mmdebstrap not found: apt-get install mmdebstrap" >&2
    exit 1
}

keep=${2:-}
tarball=${keep:-$(mktemp --suffix=.tar)}
cleanup() { [ -n "$keep" ] || rm -f "$tarball"; }
trap cleanup EXIT

# The host's own apt sources (a deb822 file or sources.list), else mmdebstrap's default mirror.
sources=()
for candidate in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    if [ -s "$candidate" ] && grep -qE '^(URIs:|deb )' "$candidate"; then
        sources=("$candidate")
        break
    fi
done

arch=$(dpkg --print-architecture)
packages=python3,python3-venv,openjdk-17-jre-headless,ca-certificates,netbase,tzdata
# Slim like debian:bookworm-slim: no manuals, docs (copyright files kept) or translations.
# openjdk-17's postinst needs /usr/share/man/man1 to exist even so. The hooks' "$1" is the root
# file tree, expanded by mmdebstrap, not here.
# shellcheck disable=SC2016
mmdebstrap --variant=minbase --include="$packages" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --essential-hook='mkdir -p "$1/usr/share/man/man1"' \
    --customize-hook="mkdir -p \"\$1/opt/java\" && ln -s /usr/lib/jvm/java-17-openjdk-$arch \"\$1/opt/java/openjdk\"" \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
    bookworm "$tarball" "${sources[@]}"

"$docker" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --message "Debian bookworm minbase + $packages (mmdebstrap)" \
    "$tarball" "$image" >/dev/null
echo "debian_base: $image: $("$docker" run --rm --network none "$image" python3 --version)," \
    "$("$docker" run --rm --network none "$image" /opt/java/openjdk/bin/java -version 2>&1 | head -n 1)"
