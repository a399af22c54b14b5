"""The one typed config: bounds, defaults, fingerprint, and the UI form's schema."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from boneflow.config import RetrainConfig


def test_every_field_has_a_description_and_default_for_the_ui_form():
    schema = RetrainConfig.model_json_schema()
    for name, prop in schema["properties"].items():
        assert prop.get("description"), f"{name} has no description"
        assert "default" in prop, f"{name} has no default"


@pytest.mark.parametrize(
    "field,value",
    [("epochs", 0), ("image_size", 16), ("batch_size", 1), ("min_accuracy", 1.5), ("lr", 0.0), ("dispatch", "gpu")],
)
def test_out_of_bounds_values_are_refused_naming_the_field(field, value):
    with pytest.raises(ValidationError) as info:
        RetrainConfig(**{field: value})
    assert field in str(info.value)


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError, match="epoch"):
        RetrainConfig(epoch=3)


def test_pack_size_is_eight_sevenths_of_the_crop():
    assert RetrainConfig().pack_size == 256
    assert RetrainConfig(image_size=64).pack_size == 73


def test_fingerprint_tracks_model_settings_only():
    base = RetrainConfig()
    assert base.fingerprint() == RetrainConfig().fingerprint()
    assert base.fingerprint() != RetrainConfig(epochs=3).fingerprint()
    # where results go and how training is dispatched do not change the model
    assert base.fingerprint() == RetrainConfig(store_url="s3://b/p", dispatch="deployment", force=True).fingerprint()


def test_empty_strings_from_the_ui_form_mean_not_set():
    assert RetrainConfig(data_dir="", weights_path="").data_dir is None


def test_train_settings_carry_the_training_fields():
    s = RetrainConfig(epochs=3, image_size=64, seed=7).train_settings()
    assert (s.epochs, s.image_size, s.seed) == (3, 64, 7)
