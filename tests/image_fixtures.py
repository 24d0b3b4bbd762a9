"""The built image and a network with only the test's services, shared by the tests that run
the image (tests/test_spark_image_run.py: the CLI; tests/test_pipelines_in_image.py: the
pipelines under KFP's executor).

The image must exist: `make spark-image-build` (CI: `make spark-image-ci`). Without it, or without
a Docker engine, those tests skip; with DEEP_STORAGE_REQUIRE_IMAGE=1 (CI) they fail instead.
DOCKER names the client (default docker), DEEP_STORAGE_IMAGE the image (default the tag
components/_image.py names).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import socket
import subprocess
import threading
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from deep_storage_kfp.components._image import IMAGE_NAME

REPO = Path(__file__).resolve().parent.parent
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
IMAGE = os.environ.get("DEEP_STORAGE_IMAGE", f"{IMAGE_NAME}:{VERSION}")
DOCKER = os.environ.get("DOCKER", "docker")
REQUIRED = os.environ.get("DEEP_STORAGE_REQUIRE_IMAGE") == "1"


# --- the engine and the image ----------------------------------------------------------------


def unavailable(reason: str):
    if REQUIRED:
        pytest.fail(f"{reason} (DEEP_STORAGE_REQUIRE_IMAGE=1: CI must run the image tests)")
    pytest.skip(reason)


def docker_cli(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [DOCKER, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{DOCKER} {' '.join(args[:3])}: {proc.stderr.strip()}")
    return proc


@pytest.fixture(scope="module")
def image() -> str:
    if shutil.which(DOCKER) is None:
        unavailable(f"no Docker client ({DOCKER}): apt-get install docker.io")
    if docker_cli("info", timeout=30, check=False).returncode != 0:
        unavailable("no Docker engine answers: start dockerd (spark_image/ci.sh does)")
    if docker_cli("image", "inspect", IMAGE, check=False).returncode != 0:
        unavailable(f"image {IMAGE} not built: make spark-image-build (or spark-image-ci)")
    return IMAGE


# --- no network but the services -------------------------------------------------------------

_CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(1 << 16):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


class ServicePorts:
    """Listen on 127.0.0.1:PORT inside the network namespace of process `pid` for each port,
    and relay every connection to 127.0.0.1:PORT of this process's namespace: the container
    then reaches those ports, with the host's numbers, and nothing else."""

    def __init__(self, pid: int, ports: list[int]) -> None:
        self.pid, self.ports = pid, ports
        self._listeners: list[socket.socket] = []

    def __enter__(self) -> ServicePorts:
        here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        there = os.open(f"/proc/{self.pid}/ns/net", os.O_RDONLY)
        try:
            _setns(there)  # this thread only; sockets keep the namespace they were made in
            try:
                for port in self.ports:
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    sock.bind(("127.0.0.1", port))
                    sock.listen(64)
                    self._listeners.append(sock)
            finally:
                _setns(here)
        finally:
            os.close(here)
            os.close(there)
        for sock, port in zip(self._listeners, self.ports, strict=True):
            threading.Thread(target=self._accept, args=(sock, port), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket, port: int) -> None:
        while True:
            try:
                inner, _ = listener.accept()
            except OSError:
                return  # closed by __exit__
            threading.Thread(target=self._relay, args=(inner, port), daemon=True).start()

    @staticmethod
    def _relay(inner: socket.socket, port: int) -> None:
        with inner, socket.create_connection(("127.0.0.1", port)) as outer:
            back = threading.Thread(target=_pump, args=(outer, inner), daemon=True)
            back.start()
            _pump(inner, outer)
            back.join()

    def __exit__(self, *exc) -> None:
        for sock in self._listeners:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@pytest.fixture(scope="module")
def container_network(image, service_env):
    """`--network` for the commands: a holder container's namespace with only the services."""
    ports = [int(service_env["DJANGO_DB_PORT"]), urlsplit(service_env["AWS_ENDPOINT"]).port]
    if os.geteuid() != 0:
        yield "host"  # entering another network namespace needs root
        return
    holder = docker_cli(
        "run", "--detach", "--rm", "--network", "none", "--hostname", "localhost",
        "--user", "185:0", "--read-only", image, "sleep", "infinity",
    ).stdout.strip()  # fmt: skip
    try:
        pid = int(docker_cli("inspect", "--format", "{{.State.Pid}}", holder).stdout)
        with ServicePorts(pid, ports):
            yield f"container:{holder}"
    finally:
        docker_cli("rm", "--force", holder, check=False)
