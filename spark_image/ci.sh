#!/usr/bin/env bash
# CI's image part, from nothing (issue 14): no container registry is reachable, so the engine and
# the base come from Debian's packages.
#
#   bash spark_image/ci.sh          # engine, Debian base, the image, its smoke test
#   bash spark_image/ci.sh stop     # stop the engine this script started (.ci/run's EXIT trap)
#
# 1. apt: docker.io (dockerd, containerd, runc) and mmdebstrap, when missing.
# 2. dockerd in the background, unless an engine already answers: overlay2, else vfs; no bridge
#    and no iptables rules (the containers use --network none or a holder's namespace, see
#    tests/test_spark_image_run.py), its output in .cache/dockerd.log, its pid in .cache/.
# 3. `make spark-image-base`: Debian bookworm minbase + python3, OpenJDK 17 (mmdebstrap), imported.
# 4. `make spark-image-build` on that base, with --network none: the Dockerfile, JAR checks,
#    locked wheels and project wheel of every build.
# 5. `make spark-image-smoke`: smoke.sh inside the image, without a network.
# The engine is left running for the in-image tests of `make test` (.ci/run sets
# DEEP_STORAGE_REQUIRE_IMAGE=1 so they cannot skip). DOCKER: the client (default: Debian's,
# /usr/bin/docker, the one that matches its dockerd).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
state=.cache
pidfile=$state/dockerd.pid
log=$state/dockerd.log
mkdir -p "$state"
if [ -z "${DOCKER:-}" ]; then
    DOCKER=docker
    [ ! -x /usr/bin/docker ] || DOCKER=/usr/bin/docker
fi
export DOCKER

stop_engine() {
    [ -s "$pidfile" ] || return 0
    local pid
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 30); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 1
        done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$pidfile"
    echo "ci.sh: dockerd $pid stopped"
}

if [ "${1:-}" = stop ]; then
    stop_engine
    exit 0
fi

elapsed() { echo "$(($(date +%s) - start)) s"; }
start=$(date +%s)

if ! command -v dockerd >/dev/null || ! command -v mmdebstrap >/dev/null; then
    apt-get install -y -qq --no-install-recommends docker.io mmdebstrap >/dev/null
fi
[ -x "$(command -v "$DOCKER")" ] || DOCKER=docker

# Start dockerd with a storage driver; true once the engine answers, false if dockerd exited.
start_engine() {
    local driver=$1
    # Its own session and no inherited output or descriptor: CI waits on nothing it leaves
    # behind, and a lock the caller holds (flock's descriptor) is not held on by the engine.
    setsid dockerd --storage-driver "$driver" --bridge none --iptables=false --ip6tables=false \
        </dev/null >>"$log" 2>&1 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- &
    echo $! >"$pidfile"
    for _ in $(seq 60); do
        if "$DOCKER" info >/dev/null 2>&1; then
            echo "ci.sh: dockerd $(cat "$pidfile") up with $driver ($(elapsed))"
            return 0
        fi
        kill -0 "$(cat "$pidfile")" 2>/dev/null || break
        sleep 1
    done
    echo "ci.sh: dockerd did not start with $driver; the end of $log:" >&2
    tail -n 5 "$log" >&2
    stop_engine
    return 1
}

if "$DOCKER" info >/dev/null 2>&1; then
    echo "ci.sh: a Docker engine already answers; using it"
else
    start_engine overlay2 || start_engine vfs || {
        echo "ci.sh: no Docker engine could start (see $log)" >&2
        exit 1
    }
fi

echo "== image: Debian base (mmdebstrap)"
make --no-print-directory spark-image-base
echo "== image: build ($(elapsed) so far)"
make --no-print-directory spark-image-build SPARK_IMAGE_BASE=deep-storage-base:bookworm \
    >"$state/spark-image-build.log" 2>&1 || {
    tail -n 40 "$state/spark-image-build.log" >&2
    exit 1
}
"$DOCKER" image prune --force >/dev/null # the build's dangling intermediate images
echo "== image: smoke ($(elapsed) so far)"
make --no-print-directory spark-image-smoke
"$DOCKER" image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -v '<none>'
echo "== image: built and smoke-tested in $(elapsed)"
