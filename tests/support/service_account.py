"""What the kubelet gives a pod that mounts its service account, for the container tests.

A projected volume at ``/var/run/secrets/kubernetes.io/serviceaccount`` holding ``token``,
``ca.crt`` and ``namespace``, written as the kubelet's AtomicWriter writes it (the files in a
timestamped folder, ``..data`` a link to it, each file a link through ``..data``; a rotation
writes a new folder and swaps ``..data`` in one rename, so a reader never sees half of it),
and ``KUBERNETES_SERVICE_HOST``/``_PORT`` in every container. The API server they point at is
the test's (tests/support/api_front.py in front of kmock's emulator).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
FILES = ("token", "ca.crt", "namespace")


@dataclass
class ServiceAccounts:
    """The cluster's API server address, its CA, and the token the kubelet projects."""

    host: str
    port: int
    ca_pem: str
    token: str
    folders: list[tuple[Path, str]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        """What the kubelet sets in every container (enableServiceLinks does not remove it)."""
        return {
            "KUBERNETES_SERVICE_HOST": self.host,
            "KUBERNETES_SERVICE_PORT": str(self.port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(self.port),
        }

    def project(self, folder: Path, namespace: str) -> Path:
        """Write a pod's service-account volume into ``folder`` (kept up to date by
        :meth:`rotate`)."""
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)
        self.folders.append((folder, namespace))
        self._write(folder, namespace)
        return folder

    def rotate(self, token: str) -> None:
        """The kubelet refreshes the projected token: every pod's file now holds ``token``."""
        self.token = token
        for folder, namespace in self.folders:
            self._write(folder, namespace)

    def _write(self, folder: Path, namespace: str) -> None:
        stamp = folder / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
        stamp.mkdir(mode=0o755)
        contents = {"token": self.token, "ca.crt": self.ca_pem, "namespace": namespace}
        for name, text in contents.items():
            (stamp / name).write_text(text)
            (stamp / name).chmod(0o644)
        data = folder / "..data"
        previous = data.resolve() if data.is_symlink() else None
        swap = folder / "..data_tmp"
        swap.unlink(missing_ok=True)
        swap.symlink_to(stamp.name)
        os.replace(swap, data)  # NOTE: the one atomic step of a rotation
        for name in FILES:
            link = folder / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")
        if previous is not None and previous != stamp:
            for name in FILES:
                (previous / name).unlink(missing_ok=True)
            previous.rmdir()
