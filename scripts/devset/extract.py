"""Extraction of just the files the set needs from an archive (sdist, wheel or .deb).

Members land in CACHE_DIR/extract/<archive key>/ under their path in the archive. A member
named 'outer.zip!inner' reaches into a zip stored inside the archive and lands at
'<outer.zip>!/<inner>'. A stamp records the archive's hash and the member list, so a later run
with the same archive and members reuses the directory instead of reading the archive again.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from devset.archives import Archive

# The compression of a .deb's data member, by its name.
_DEB_DATA_MODES = {"data.tar.xz": "r:xz", "data.tar.gz": "r:gz", "data.tar.bz2": "r:bz2",
                   "data.tar": "r:"}  # fmt: skip


def extract(a: Archive, archive: Path, wanted: set[str], cache: Path) -> Path:
    """Extract `wanted` members of `archive` into cache/extract/<key>/ and return that dir."""
    root = cache / "extract" / a.key
    stamp = root / ".complete.json"
    record: dict[str, object] = {"sha256": a.sha256, "members": sorted(wanted)}
    if _stamp_matches(stamp, record):
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    writer = _MemberWriter(root, wanted)
    for name, data in _read_members(a, archive, writer.names):
        writer.put(name, data)
    missing = wanted - writer.found
    if missing:
        raise RuntimeError(f"{a.filename}: members not found: {sorted(missing)[:5]}")
    # Written last: an interrupted extraction has no stamp and is redone.
    stamp.write_text(json.dumps(record))
    return root


def _stamp_matches(stamp: Path, record: dict[str, object]) -> bool:
    if not stamp.exists():
        return False
    try:
        return bool(json.loads(stamp.read_text()) == record)
    except ValueError:  # a damaged stamp: extract again
        return False


class _MemberWriter:
    """Writes the wanted members (and the wanted files of nested zips) as they are read."""

    def __init__(self, root: Path, wanted: set[str]) -> None:
        self.root = root
        self.plain = {w for w in wanted if "!" not in w}
        self.nested: dict[str, list[str]] = {}
        for w in sorted(wanted):
            if "!" in w:
                outer, inner = w.split("!", 1)
                self.nested.setdefault(outer, []).append(inner)
        self.names = self.plain | set(self.nested)  # what to read from the archive itself
        self.found: set[str] = set()

    def put(self, name: str, data: bytes) -> None:
        if name in self.plain:
            self._write(self.root / name, data)
            self.found.add(name)
        if name in self.nested:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                for inner in self.nested[name]:
                    self._write(self.root / f"{name}!" / inner, z.read(inner))
                    self.found.add(f"{name}!{inner}")

    @staticmethod
    def _write(out: Path, data: bytes) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)


def _read_members(a: Archive, archive: Path, names: set[str]) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of each regular file in `archive` whose name is in `names`."""
    if a.kind == "wheel":
        with zipfile.ZipFile(archive) as z:
            for n in names & set(z.namelist()):
                yield n, z.read(n)
        return
    if a.kind == "deb":
        data, mode = _deb_data_tar(archive)
        with tarfile.open(fileobj=io.BytesIO(data), mode=mode) as tf:  # type: ignore[call-overload]
            yield from _tar_members(tf, names)
    else:
        with tarfile.open(archive, mode="r:*") as tf:
            yield from _tar_members(tf, names)


def _tar_members(tf: tarfile.TarFile, names: set[str]) -> Iterator[tuple[str, bytes]]:
    for m in tf:
        n = m.name.removeprefix("./")  # .deb data tars name their files ./usr/...
        f = tf.extractfile(m) if n in names and m.isfile() else None
        if f is not None:
            yield n, f.read()


def _deb_data_tar(path: Path) -> tuple[bytes, str]:
    """The data.tar.* member of a .deb (an ar archive) and its tarfile open mode."""
    with path.open("rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise RuntimeError(f"{path} is not an ar archive")
        while len(hdr := f.read(60)) == 60:
            name = hdr[:16].decode().strip().rstrip("/")
            size = int(hdr[48:58].decode().strip())
            data = f.read(size)
            if size % 2:  # ar pads each member to an even size
                f.read(1)
            if name.startswith("data.tar"):
                mode = _DEB_DATA_MODES.get(name)
                if mode is None:
                    raise RuntimeError(f"{path}: unsupported member {name}")
                return data, mode
    raise RuntimeError(f"{path}: no data.tar member")
