"""JSON Schema export and Hugging Face ``Features`` derived from the pydantic models.

One source of truth: the pydantic models. The JSON files in ``schemas/`` and the Arrow features of every
dataset we write are derived from them, so the three cannot disagree.
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path

from pydantic import BaseModel

from steca_data.core.schemas import EXPORTED_MODELS, SCHEMA_VERSION

REPO_SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


def json_schema_text(model: type[BaseModel]) -> str:
    schema = model.model_json_schema()
    schema["$comment"] = f"steca-data schema version {SCHEMA_VERSION}; generated, do not edit"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def export_json_schemas(out_dir: Path = REPO_SCHEMA_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in EXPORTED_MODELS.items():
        path = out_dir / f"{name}.schema.json"
        path.write_text(json_schema_text(model))
        written.append(path)
    return written


def drifted_json_schemas(out_dir: Path = REPO_SCHEMA_DIR) -> list[str]:
    """Names whose file in ``out_dir`` is missing or differs from the model."""
    drifted = []
    for name, model in EXPORTED_MODELS.items():
        path = out_dir / f"{name}.schema.json"
        if not path.exists() or path.read_text() != json_schema_text(model):
            drifted.append(name)
    return drifted


def load_json_schema(name: str, schema_dir: Path = REPO_SCHEMA_DIR) -> dict:
    return json.loads((schema_dir / f"{name}.schema.json").read_text())


def _feature_for(annotation: typing.Any):
    from datasets import List, Value

    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        non_null = [a for a in args if a is not type(None)]
        if len(non_null) != 1:
            raise TypeError(f"unsupported union {annotation}")
        return _feature_for(non_null[0])
    if origin is typing.Literal:
        return Value("string")
    if origin is list:
        return List(_feature_for(args[0]))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {name: _feature_for(f.annotation) for name, f in annotation.model_fields.items()}
    scalar = {str: "string", int: "int64", float: "float64", bool: "bool"}
    if annotation in scalar:
        return Value(scalar[annotation])
    raise TypeError(f"no Arrow feature for {annotation!r}")


def hf_features(model: type[BaseModel]):
    """``datasets.Features`` matching a pydantic row model field for field."""
    from datasets import Features

    return Features({name: _feature_for(f.annotation) for name, f in model.model_fields.items()})


def to_hf_dataset(name: str, rows: list[dict]):
    """Rows of dataset ``name`` as a ``datasets.Dataset``, column-wise with explicit features, so an empty
    dataset still has its schema."""
    from datasets import Dataset

    from steca_data.core.schemas import ROW_MODELS

    features = hf_features(ROW_MODELS[name])
    return Dataset.from_dict({col: [row[col] for row in rows] for col in features}, features=features)
