"""An Ollama `Modelfile` beside a GGUF export: `ollama create NAME -f model.Modelfile` then `ollama run NAME`.

FROM the file, TEMPLATE as Ollama's Go template of the model's chat format (ChatML, as SmolLM2/Qwen use, or our
own `System:/User:/Assistant:` format), the end-of-turn tokens as stop strings, and the export's sampling
settings. Untested here: no Ollama runs on this machine (llama.cpp itself checks the GGUF file).
"""

from __future__ import annotations

import json
from pathlib import Path

from lightning_llm.data.chat import CHAT_TEMPLATE
from lightning_llm.io import write_text

CHATML = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
)


def _ours(eos: str) -> str:
    return ("{{- range .Messages }}"
            '{{- if eq .Role "system" }}System: {{ .Content }}\n'
            '{{ else if eq .Role "user" }}User: {{ .Content }}\n'
            '{{ else if eq .Role "assistant" }}Assistant: {{ .Content }}' + eos + "{{ end }}"
            "{{- end }}Assistant:")


def ollama_template(chat_template: str | None, eos: str) -> str | None:
    """The Go template for a Jinja chat template we recognise, else None (Ollama then reads the template in the
    GGUF file's metadata itself)."""
    if not chat_template:
        return None
    if chat_template == CHAT_TEMPLATE:
        return _ours(eos)
    if "<|im_start|>" in chat_template and "<|im_end|>" in chat_template:
        return CHATML
    return None


def write_modelfile(path: Path, gguf_file: Path, tokenizer, hf_dir: Path) -> Path:
    """Write the Modelfile for `gguf_file` (named relative to it, so the pair can move together)."""
    eos = tokenizer.eos_token or ""
    template = ollama_template(tokenizer.chat_template, eos)
    stops = [eos] if eos else []
    if template == CHATML:
        stops = list(dict.fromkeys(["<|im_end|>", *stops]))
    lines = [f"# Ollama: ollama create <name> -f {path.name}  (written by lightning_llm; untested with Ollama here)",
             f"FROM ./{gguf_file.name}"]
    if template:
        lines.append(f'TEMPLATE """{template}"""')
    else:
        lines.append("# no TEMPLATE: Ollama uses the chat template stored in the GGUF file")
    lines += [f'PARAMETER stop "{s}"' for s in stops if s]
    generation = hf_dir / "generation_config.json"
    settings = json.loads(generation.read_text()) if generation.is_file() else {}
    for key in ("temperature", "top_k", "top_p"):
        if key in settings:
            lines.append(f"PARAMETER {key} {settings[key]}")
    write_text(path, "\n".join(lines) + "\n")
    return path
