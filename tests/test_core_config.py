"""Config loading and validation: every user mistake is one line naming the key, exit status 2."""
import pytest
import yaml

from core_helpers import TESTS, cli, error_line

TOY = TESTS / "toy.yaml"


@pytest.mark.parametrize("override, expected", [
    ("model.hiden=3", ["model.hiden", "Did you mean", "hidden"]),            # misspelled key
    ("model.hidden=abc", ["model.hidden", "could not be converted to Integer"]),  # wrong type
    ("train.epoch=3", ["train.epoch", "epochs"]),                               # misspelled top-level key
    ("model.name=toy_mpl", ["model.name", "unknown architecture 'toy_mpl'", "did you mean 'toy_mlp'",
                            "registered:"]),                                    # unknown component
    ("model.name=toy_required", ["model.width", "required value is missing"]),   # missing required value
    ("data.root=/nonexistent/dir", ["data.root", "/nonexistent/dir"]),           # missing data path
    ("loss=", ["loss.name", "unknown loss ''"]),
    ("train.amp=fp32", ["train.amp", "Invalid value 'fp32', expected one of ['bf16', 'fp16']"]),
    ("train.amp=fp16", ["train.amp", "fp16 needs a CUDA device (device is cpu); use bf16"]),
    ("loss=[1,2]", ["loss:", "must be a mapping with a 'name' key", "registered: toy_mse"]),
])
def test_bad_config_is_one_line_naming_the_key(override, expected, tmp_path):
    result = cli("run", TOY, override, f"output_dir={tmp_path}")
    line = error_line(result)
    for fragment in expected:
        assert fragment in line, line


def test_fused_optimizer_only_where_torch_has_one(tmp_path):
    result = cli("run", TOY, "train.optimizer=radam", "train.fused=true", f"output_dir={tmp_path}")
    assert error_line(result) == "trackformer: error: train.fused: only adamw and sgd have a fused kernel, not radam"
    assert cli("run", TOY, "train.fused=true", "train.epochs=1", f"output_dir={tmp_path}").returncode == 0


def test_unknown_top_level_key_and_bad_override_syntax(tmp_path):
    assert "nonsense" in error_line(cli("run", TOY, "nonsense=1"))
    assert "key=value" in error_line(cli("run", TOY, "train.epochs"))
    assert "config file not found" in error_line(cli("run", tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {name: toy_mlp\n")
    assert "invalid YAML" in error_line(cli("run", bad))


def test_extends_and_switching_component_drops_old_keys(tmp_path):
    child = tmp_path / "child.yaml"
    child.write_text(yaml.safe_dump({"extends": [str(TOY)], "train": {"epochs": 7}}))
    result = cli("config", "show", child, "model.name=toy_required", "model.width=5")
    assert result.returncode == 0, result.stderr
    shown = yaml.safe_load(result.stdout)
    assert shown["train"]["epochs"] == 7           # from the child
    assert shown["train"]["batch_size"] == 8       # inherited
    assert shown["model"] == {"name": "toy_required", "width": 5}  # toy_mlp's `hidden` dropped
    assert shown["data"]["dim"] == 8


def test_circular_extends(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("extends: [b.yaml]\n")
    b.write_text("extends: [a.yaml]\n")
    assert "circular extends" in error_line(cli("config", "show", a))


def test_python_api_load_config_is_read_only_and_typed(monkeypatch):
    import trackformer
    from trackformer.plugins import load_plugins, reset_plugins

    monkeypatch.setenv("TRACKFORMER_DISABLE_PLUGIN_AUTOLOAD", "1")
    reset_plugins()
    load_plugins(["toy_plugin"])
    cfg = trackformer.load_config(TOY, ["train.lr=0.5"])
    assert cfg.train.lr == 0.5 and cfg.model.hidden == 16 and cfg.train.clip_max_norm == 1.0
    with pytest.raises(Exception):
        cfg.train.lr = 1.0
    model = trackformer.build_model(cfg)
    assert sum(p.numel() for p in model.parameters()) == 8 * 16 + 16 + 16 + 1
    reset_plugins()


def test_no_code_execution_from_config(tmp_path):
    """A `_target_`-style key is just an unknown key: configs never import or call anything."""
    line = error_line(cli("run", TOY, "model._target_=os.system"))
    assert "model._target_" in line
