"""Every member's image builds here, offline, holds only what its member imports, and starts
as the chart runs it: UID 10001, a read-only root, every capability dropped."""

from __future__ import annotations

import subprocess

import pytest
from scripts import images

pytestmark = pytest.mark.containers

#: distributions a member's image must not carry (it never imports them)
ABSENT = {
    "edge": ["sqlalchemy", "dramatiq", "pika", "alembic", "fastapi"],
    "console": ["sqlalchemy", "dramatiq", "pika", "alembic"],
    "notifications": ["sqlalchemy", "alembic", "fastapi"],
    "inventory": ["dramatiq", "pika"],
    "payments": ["dramatiq", "pika"],
    "operator": ["sqlalchemy", "dramatiq", "alembic", "fastapi"],
}
#: imports every module of a member: what its image lacks would fail here, not in a pod
WALK = (
    "import importlib, pkgutil, sys; package = importlib.import_module(sys.argv[1]);"
    "[importlib.import_module(m.name) for m in pkgutil.walk_packages(package.__path__, "
    "sys.argv[1] + '.')]"
)


def _run(docker: str, image: str, *command: str) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in ``image`` as the chart's security context does."""
    hardened = [
        "--rm", "--read-only", "--tmpfs", "/tmp", "--user", "10001:10001",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--memory", "256m",
        "--network", "none",
    ]  # fmt: skip
    return subprocess.run(
        [docker, "run", *hardened, image, *command],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_every_member_has_an_image_from_the_dockerfile(
    docker_client: str, built: list[images.Built]
) -> None:
    assert [b.member for b in built] == list(images.MEMBERS)
    for image in built:
        config = subprocess.run(
            [docker_client, "image", "inspect", "--format", "{{.Config.User}}", image.image],
            capture_output=True,
            text=True,
            check=True,
        )
        assert config.stdout.strip() == "10001:10001"
        assert 0 < image.own_mb < image.size_mb


@pytest.mark.parametrize("member", sorted(ABSENT))
def test_an_image_holds_only_what_its_member_imports(
    docker_client: str, built: list[images.Built], member: str
) -> None:
    script = (
        "import importlib.util as u, sys;"
        f"found = [m for m in {ABSENT[member]!r} if u.find_spec(m)];"
        "print(' '.join(found)); sys.exit(1 if found else 0)"
    )
    done = _run(docker_client, images.image_name(member), "python", "-c", script)
    assert done.returncode == 0, f"{member}'s image carries {done.stdout.strip()}{done.stderr}"


def test_each_member_starts_as_10001_on_a_read_only_root(
    docker_client: str, built: list[images.Built]
) -> None:
    for member in images.MEMBERS:
        image = images.image_name(member)
        done = _run(docker_client, image, "python", "-c", WALK, f"flotilla.{member}")
        assert done.returncode == 0, f"{member}: {done.stderr[-600:]}"
        who = _run(docker_client, image, "sh", "-c", "id -u; touch /app/x || echo read-only")
        assert who.stdout.split() == ["10001", "read-only"], who
