"""The local platform's keys: files under ``var/local/`` that only their owner can read."""

from __future__ import annotations

import secrets
from pathlib import Path


def ensure_api_key(var_dir: Path, name: str = "api-key") -> tuple[Path, str]:
    """A local key (created on first run, mode 0600) and its path: ``api-key`` (a customer's
    scopes) or ``operator-key`` (sees every client's orders)."""
    path = var_dir / "local" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)  # NOTE: private before the secret is in it
        path.write_text(secrets.token_urlsafe(32) + "\n")
        path.chmod(0o600)
    return path, path.read_text().strip()
