"""The component contract: factories receive typed settings, errors name the full key, an
architecture names the components it works with, and a model is built without its data when its
settings fix everything it needs."""
import pytest

import trackformer
from core_helpers import TESTS
from trackformer.errors import ConfigError
from trackformer.plugins import load_plugins, reset_plugins

TOY = TESTS / "toy.yaml"


def test_factory_receives_its_schema_dataclass(toy_plugins):
    import toy_plugin

    cfg = trackformer.load_config(TOY, ["model.hidden=5"])
    model = trackformer.build_model(cfg)
    assert type(model.settings) is toy_plugin.ToyModelConfig
    assert model.settings.hidden == 5 and model.settings.weights is None


def test_settings_checks_run_when_the_config_is_loaded(toy_plugins):
    with pytest.raises(ConfigError) as error:
        trackformer.load_config(TOY, ["model.hidden=0"])
    assert str(error.value) == "model.hidden: must be >= 1, got 0"


def test_factory_error_is_reported_under_the_node_key(toy_plugins, tmp_path):
    cfg = trackformer.load_config(TOY, [f"data.root={tmp_path / 'missing'}"])
    with pytest.raises(ConfigError) as error:
        trackformer.build_dataset(cfg, "train")
    assert str(error.value) == f"data.root: directory not found: {tmp_path / 'missing'}"


def test_model_is_built_without_reading_data_it_does_not_need(toy_plugins, tmp_path, monkeypatch):
    import toy_plugin

    reads = []
    original = toy_plugin.build_data
    monkeypatch.setattr(toy_plugin, "build_data", lambda *a, **k: reads.append(a) or original(*a, **k))
    reset_plugins()
    load_plugins(["toy_plugin"])
    # toy_mlp takes `dim` from the data: they are read, once
    cfg = trackformer.load_config(TOY)
    trackformer.build_model(cfg)
    assert len(reads) == 1
    # a data_info given by the caller is used as it is
    model = trackformer.build_model(cfg, {"dim": 3})
    assert model.backbone.in_features == 3 and len(reads) == 1
