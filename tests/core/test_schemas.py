"""The JSON Schemas in schemas/ are generated from the pydantic models and must not drift."""

from __future__ import annotations

from steca_data.core.schema_io import REPO_SCHEMA_DIR, drifted_json_schemas, export_json_schemas, hf_features
from steca_data.core.schemas import EXPORTED_MODELS, ROW_MODELS


def test_schema_files_match_models():
    assert drifted_json_schemas() == [], "run `steca-data schemas export` and commit schemas/"


def test_drift_is_detected(tmp_path):
    export_json_schemas(tmp_path)
    assert drifted_json_schemas(tmp_path) == []
    (tmp_path / "trajectory.schema.json").write_text("{}")
    assert drifted_json_schemas(tmp_path) == ["trajectory"]


def test_every_model_is_exported_and_rows_have_arrow_features():
    assert {p.name for p in REPO_SCHEMA_DIR.glob("*.schema.json")} == {f"{n}.schema.json" for n in EXPORTED_MODELS}
    for model in ROW_MODELS.values():
        features = hf_features(model)
        assert set(features) == set(model.model_fields)
