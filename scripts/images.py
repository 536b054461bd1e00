"""The container side of Flotilla: a Docker Engine, the base images, one image per member.

``python scripts/images.py engine``
    A running Docker Engine: Debian's ``docker.io`` installed with apt when missing and
    ``dockerd`` started when it is not answering (both as root; otherwise it says what to run).
``python scripts/images.py base-images``
    Stand-ins for the two base images, for machines that cannot pull them, under their own
    names (never tagged as the official ones): a Debian bookworm made with ``debootstrap`` from
    Debian's packages with Debian's python3 (``/usr/local/bin/python*`` links, as the official
    image has) and this machine's certificate authorities, and uv's binary from its PyPI wheel
    in an image ``FROM scratch``.
``python scripts/images.py build [MEMBER ...]``
    Every member's image from the Dockerfile with BuildKit, then each image's size and the size
    of its own layers (what it adds to the base).

The Dockerfile needs BuildKit (``RUN --mount=type=cache``). A Docker client of version 23 or
newer without the buildx plugin refuses ``DOCKER_BUILDKIT=1``; an older client (Debian's 20.10)
hands the build to the daemon's built-in BuildKit. :func:`docker_client` picks one that can.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from flotilla.contracts.catalogue import CATALOGUE

ROOT = Path(__file__).resolve().parents[1]
#: one image per member a component of the catalogue runs, and the CLI's (the mail sink, the
#: chart's test pod): a component added to the catalogue gets its image here
MEMBERS = (*dict.fromkeys(c.member for c in CATALOGUE.components), "cli")
REGISTRY = "localhost/flotilla"
TAG = "0.1.0"
OFFICIAL = {"python": "python:3.11-slim", "uv": "ghcr.io/astral-sh/uv:0.9"}
STANDIN = {
    "python": "localhost/flotilla-standin/python:3.11-slim",
    "uv": "localhost/flotilla-standin/uv:0.9",
}
#: uv's release line the stand-in takes its binary from (the official tag above is 0.9).
UV_WHEEL = "uv>=0.9,<0.10"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = os.environ.get("FLOTILLA_DEBIAN_MIRROR", "http://deb.debian.org/debian")
#: Where the host keeps the certificate authorities it trusts (Debian's bundle).
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
LOGS = ROOT / "var" / "images"
DOCKERD_LOG = ROOT / "var" / "dockerd.log"


class ImagesError(RuntimeError):
    """Something the user must fix; the message says what and how."""


def _say(message: str) -> None:
    print(message, flush=True)


def _run(command: Sequence[str], **options: object) -> subprocess.CompletedProcess[str]:
    # NOTE: only this module's own commands (docker, apt-get, debootstrap, pip) come here
    return subprocess.run(command, text=True, capture_output=True, check=False, **options)  # type: ignore[call-overload,no-any-return]  # noqa: S603


def _client_version(client: str) -> tuple[int, ...]:
    answer = _run([client, "version", "--format", "{{.Client.Version}}"])
    digits = answer.stdout.strip().split("+")[0].split("-")[0]
    try:
        return tuple(int(part) for part in digits.split("."))
    except ValueError:
        return ()


def docker_client() -> str:
    """A ``docker`` client that builds with BuildKit here (``FLOTILLA_DOCKER`` overrides).

    Candidates: the ``docker`` first on PATH, then Debian's ``/usr/bin/docker``. A client with
    the buildx plugin will do; so will one older than 23, which uses the daemon's BuildKit.
    """
    given = os.environ.get("FLOTILLA_DOCKER")
    if given:
        return given
    candidates = [c for c in (shutil.which("docker"), "/usr/bin/docker") if c and Path(c).exists()]
    for client in dict.fromkeys(candidates):
        if _run([client, "buildx", "version"]).returncode == 0:
            return client
        version = _client_version(client)
        if version and version < (23,):
            return client
    raise ImagesError(
        "no Docker client here can build with BuildKit: install Debian's "
        "(apt-get install docker.io) or the buildx plugin"
    )


def engine_answers(client: str | None = None) -> bool:
    """Whether a Docker Engine answers on this machine."""
    try:
        client = client or docker_client()
    except ImagesError:
        return False
    return _run([client, "info", "--format", "{{.ServerVersion}}"]).returncode == 0


def _apt_install(package: str) -> None:
    """Install one of Debian's packages (as root), refreshing the package lists if need be."""
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if _run(install, env=env).returncode != 0:
        _run(["apt-get", "update", "-qq"], env=env)
        done = _run(install, env=env)
        if done.returncode != 0:
            raise ImagesError(f"apt-get install {package} failed: {done.stderr.strip()[-300:]}")


def ensure_engine(timeout_s: float = 60.0) -> str:
    """Make a Docker Engine answer: install Debian's ``docker.io`` and start ``dockerd``."""
    if engine_answers():
        return docker_client()
    root = os.geteuid() == 0
    if not Path("/usr/sbin/dockerd").exists() and not shutil.which("dockerd"):
        if not root or not shutil.which("apt-get"):
            raise ImagesError(
                "no Docker Engine here: run 'apt-get install docker.io' and start dockerd as root"
            )
        _say("installing Debian's docker.io (Docker Engine, containerd, runc) with apt")
        _apt_install("docker.io")
    if not root:
        raise ImagesError("the Docker Engine is not running: start it as root ('dockerd &')")
    DOCKERD_LOG.parent.mkdir(parents=True, exist_ok=True)
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    _say(f"starting dockerd (log: {DOCKERD_LOG.relative_to(ROOT)})")
    with DOCKERD_LOG.open("ab") as log:
        subprocess.Popen(  # noqa: S603  # a fixed command
            [dockerd], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if engine_answers():
            return docker_client()
        time.sleep(0.5)
    raise ImagesError(f"dockerd did not answer in {timeout_s:.0f} s: see {DOCKERD_LOG}")


def image_exists(client: str, name: str) -> bool:
    return _run([client, "image", "inspect", name]).returncode == 0


def base_images_for(client: str) -> dict[str, str]:
    """The base images a build uses: ``PYTHON_IMAGE``/``UV_IMAGE`` if given, else the official
    ones when this engine has them, else the stand-ins of ``make base-images`` when it has
    those, else the official ones (pulled)."""
    chosen = {}
    for kind, official in OFFICIAL.items():
        given = os.environ.get(f"{kind.upper()}_IMAGE")
        if given:
            chosen[kind] = given
        elif not image_exists(client, official) and image_exists(client, STANDIN[kind]):
            chosen[kind] = STANDIN[kind]
        else:
            chosen[kind] = official
    return chosen


# --- stand-in base images ------------------------------------------------------------------


def _python_standin(client: str, work: Path) -> None:
    rootfs = work / "rootfs"
    if not shutil.which("debootstrap"):
        if os.geteuid() != 0:
            raise ImagesError("debootstrap is missing: run 'apt-get install debootstrap' as root")
        _apt_install("debootstrap")
    _say(f"debootstrap {DEBIAN_SUITE} (minbase, python3, python3-venv) from {DEBIAN_MIRROR}")
    packages = "python3,python3-venv,ca-certificates"
    command = ["debootstrap", "--variant=minbase", f"--include={packages}"]
    done = _run([*command, DEBIAN_SUITE, str(rootfs), DEBIAN_MIRROR])
    if done.returncode != 0:
        raise ImagesError(f"debootstrap failed: {done.stdout.strip()[-400:]}")
    # as the official image: python, python3 and python3.11 in /usr/local/bin
    for name in ("python", "python3", "python3.11"):
        link = rootfs / "usr/local/bin" / name
        link.unlink(missing_ok=True)
        link.symlink_to("/usr/bin/python3.11")
    # NOTE: this machine reaches PyPI through a proxy whose certificate authority only the host
    # trusts; without it uv inside a build cannot fetch a package.
    shutil.copyfile(HOST_CA_BUNDLE, rootfs / "etc/ssl/certs/ca-certificates.crt")
    for folder in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
        for entry in (rootfs / folder).glob("*"):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            elif entry.name != "lock":
                entry.unlink()
    changes = [
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
        'CMD ["python3"]',
        "LABEL org.opencontainers.image.description=flotilla-stand-in-for-python:3.11-slim",
    ]
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)  # noqa: S603,S607
    flags = [arg for change in changes for arg in ("--change", change)]
    imported = _run([client, "import", *flags, "-", STANDIN["python"]], stdin=tar.stdout)
    tar.wait()
    if imported.returncode != 0:
        raise ImagesError(f"docker import failed: {imported.stderr.strip()}")


def _pip() -> list[str]:
    """A ``python -m pip`` that works: uv's virtual environments have none, and under
    ``uv run`` the ``python3`` on PATH is the environment's own, so the interpreter the
    environment was made from comes next, then the machine's."""
    candidates = [sys.executable, getattr(sys, "_base_executable", ""), "/usr/bin/python3"]
    for python in filter(None, candidates):
        if _run([python, "-m", "pip", "--version"]).returncode == 0:
            return [python, "-m", "pip"]
    raise ImagesError(
        "no Python here has pip, which fetches uv's wheel: install it (apt-get install python3-pip)"
    )


def _uv_standin(client: str, work: Path) -> None:
    wheels = work / "wheels"
    pip = _pip()
    _say(f"uv's binary from its PyPI wheel ({UV_WHEEL})")
    done = _run(
        [
            *pip,
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            UV_WHEEL,
            "-d",
            str(wheels),
        ]
    )
    if done.returncode != 0:
        raise ImagesError(f"pip download {UV_WHEEL} failed: {done.stderr.strip()[-300:]}")
    (wheel,) = wheels.glob("uv-*.whl")
    context = work / "uv"
    context.mkdir()
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.endswith(("/scripts/uv", "/scripts/uvx")):
                target = context / Path(name).name
                target.write_bytes(archive.read(name))
                target.chmod(0o755)
    (context / "Dockerfile").write_text('FROM scratch\nCOPY uv uvx /\nENTRYPOINT ["/uv"]\n')
    built = _run([client, "build", "-q", "-t", STANDIN["uv"], str(context)], env=_buildkit_env())
    if built.returncode != 0:
        raise ImagesError(f"building {STANDIN['uv']} failed: {built.stderr.strip()[-300:]}")


def make_base_images(client: str, *, force: bool = False) -> dict[str, str]:
    """Build the stand-ins this engine lacks (all with ``force``); their names by kind."""
    with tempfile.TemporaryDirectory(prefix="flotilla-base-") as folder:
        for kind, make in (("python", _python_standin), ("uv", _uv_standin)):
            if force or not image_exists(client, STANDIN[kind]):
                started = time.monotonic()
                make(client, Path(folder))
                _say(f"built {STANDIN[kind]} in {time.monotonic() - started:.0f} s")
            else:
                _say(f"{STANDIN[kind]} is here already (--force rebuilds it)")
    return dict(STANDIN)


# --- member images -------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    member: str
    image: str
    seconds: float
    size_mb: float
    own_mb: float


def image_name(member: str, tag: str = TAG) -> str:
    return f"{REGISTRY}/flotilla-{member}:{tag}"


def _buildkit_env() -> dict[str, str]:
    return {**os.environ, "DOCKER_BUILDKIT": "1"}


def image_size(client: str, image: str) -> int:
    answer = _run([client, "image", "inspect", "--format", "{{.Size}}", image])
    return int(answer.stdout.strip() or 0)


def build(
    client: str, members: Sequence[str] = MEMBERS, tag: str = TAG, *, progress: bool = True
) -> list[Built]:
    """Build each member's image (BuildKit); logs in ``var/images/<member>.log``."""
    unknown = sorted(set(members) - set(MEMBERS))
    if unknown:
        raise ImagesError(f"no such member {unknown[0]!r}: choose from {', '.join(MEMBERS)}")
    bases = base_images_for(client)
    for kind, image in bases.items():
        if image == STANDIN[kind]:
            _say(f"base {kind}: {image} (a stand-in made by 'make base-images')")
    missing = [image for image in bases.values() if not image_exists(client, image)]
    LOGS.mkdir(parents=True, exist_ok=True)
    built: list[tuple[str, str, float, int]] = []
    for member in members:
        image = image_name(member, tag)
        command = [
            client, "build", "--progress=plain",
            "--build-arg", f"SERVICE={member}",
            "--build-arg", f"PYTHON_IMAGE={bases['python']}",
            "--build-arg", f"UV_IMAGE={bases['uv']}",
            "-t", image, str(ROOT),
        ]  # fmt: skip
        log = LOGS / f"{member}.log"
        if progress:
            _say(f"building {image} (log: {log.relative_to(ROOT)})")
        started = time.monotonic()
        with log.open("w") as out:
            done = subprocess.run(  # noqa: S603  # our own build command
                command, stdout=out, stderr=subprocess.STDOUT, env=_buildkit_env(), check=False
            )
        seconds = time.monotonic() - started
        if done.returncode != 0:
            tail = log.read_text().strip().splitlines()[-6:]
            hint = (
                f" (base images {', '.join(missing)} are not here and cannot be pulled? "
                "run 'make base-images')"
                if missing
                else ""
            )
            raise ImagesError(f"building {image} failed{hint}: " + " | ".join(tail))
        built.append((member, image, seconds, image_size(client, image)))
    # NOTE: measured after the builds, which pull the base if this engine lacked it
    base_size = image_size(client, bases["python"])
    return [Built(m, i, t, size / 1e6, (size - base_size) / 1e6) for m, i, t, size in built]


def table(results: Sequence[Built]) -> str:
    lines = ["| image | size (MB) | own layers (MB) | build (s) |", "|---|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r.image} | {r.size_mb:.0f} | {r.own_mb:.0f} | {r.seconds:.1f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/images.py", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("engine", help="a running Docker Engine (installs and starts it as root)")
    commands.add_parser("client", help="print the docker client that builds with BuildKit")
    commands.add_parser("members", help="print the members that get an image, one per line")
    base = commands.add_parser("base-images", help="build the stand-in base images")
    base.add_argument("--force", action="store_true", help="rebuild them even if present")
    make = commands.add_parser("build", help="build the members' images")
    make.add_argument("members", nargs="*", default=list(MEMBERS))
    make.add_argument("--tag", default=os.environ.get("IMAGE_TAG", TAG))
    make.add_argument("--json", action="store_true", help="print the sizes as JSON")
    args = parser.parse_args(argv)
    try:
        if args.command == "client":
            _say(docker_client())
            return 0
        if args.command == "members":
            _say("\n".join(MEMBERS))
            return 0
        client = ensure_engine()
        if args.command == "engine":
            _say(f"Docker Engine is up ({client})")
        elif args.command == "base-images":
            make_base_images(client, force=args.force)
        else:
            results = build(client, args.members, args.tag)
            _say(json.dumps([asdict(r) for r in results]) if args.json else table(results))
    except ImagesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
