"""A model folder checked before an engine loads it: each JSON file parses, each safetensors file is whole.

An engine that loads a damaged checkpoint fails far from the file (vLLM: a worker dies; a header that
claims terabytes reads as "out of memory"). Reading the small parts that say what a file holds (the JSON
files, each safetensors header and its tensor extents) takes milliseconds and names the file.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from steca_data.core.damage import DamagedFile

_JSON_FILES = ("config.json", "adapter_config.json", "generation_config.json", "tokenizer_config.json",
               "tokenizer.json", "special_tokens_map.json")  # fmt: skip
_TODO = "retrain the model or copy the folder again"
_WEIGHTS = ("*.safetensors", "*.bin", "*.pt", "*.gguf")


def _check_json(path: Path) -> None:
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DamagedFile(f"{path}: not valid JSON ({' '.join(str(exc).split())[:120]}); {_TODO}") from None


def _check_safetensors(path: Path) -> None:
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if n <= 0 or n > min(size - 8, 100_000_000):
            raise DamagedFile(f"{path}: not a safetensors file (its header claims {n} bytes of {size}); {_TODO}")
        try:
            header = json.loads(f.read(n))
        except (ValueError, UnicodeDecodeError):
            raise DamagedFile(f"{path}: damaged safetensors header (not JSON); {_TODO}") from None
    if not isinstance(header, dict):
        raise DamagedFile(f"{path}: damaged safetensors header; {_TODO}")
    ends = [t.get("data_offsets", [0, 0])[1] for k, t in header.items() if k != "__metadata__" and isinstance(t, dict)]
    if ends and max(ends) > size - 8 - n:
        raise DamagedFile(f"{path}: truncated ({size} bytes; its tensors need {8 + n + max(ends)}); {_TODO}")


def check_model_dir(path: str | Path) -> None:
    """Raise ``DamagedFile`` naming the first damaged file of a local model folder (a Hub id passes)."""
    folder = Path(path)
    if not folder.is_dir():
        return
    for name in _JSON_FILES:
        if (folder / name).is_file():
            _check_json(folder / name)
    for weights in sorted(folder.glob("*.safetensors")):
        _check_safetensors(weights)
    if not any(next(folder.glob(pattern), None) for pattern in _WEIGHTS):
        raise DamagedFile(f"{folder}: holds no weights (no *.safetensors or *.bin file); {_TODO}")
