"""Plugin loading, registries and the `plugins` command."""
import json
import os
import subprocess
import sys
import textwrap


from core_helpers import ROOT, TESTS, cli

COMPONENT_KINDS = {"backbones", "encoders", "decoders", "matchers", "losses"}


def _write_module(tmp_path, name, body):
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    return {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(TESTS)])}


def test_plugins_json_names_the_component_kinds():
    result = cli("plugins", "--json")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert COMPONENT_KINDS <= set(listing["kinds"])
    assert {"architectures", "datasets", "evaluators", "commands"} <= set(listing["kinds"])
    names = {p["name"]: p for p in listing["plugins"]}
    assert names["toy_plugin"]["source"] == "command line"
    assert names["toy_plugin"]["registers"]["architectures"] == ["toy_mlp", "toy_required", "toy_cnn"]
    assert listing["kinds"]["commands"]["run"]["plugin"] == "trackformer.builtin_plugins.commands"


def test_duplicate_name_fails_naming_both_plugins(tmp_path):
    env = _write_module(tmp_path, "dup_plugin", """
        from trackformer import hookimpl
        @hookimpl
        def register_losses(register):
            register("toy_mse", lambda cfg, **kw: None)
    """)
    result = cli("-p", "dup_plugin", "plugins", env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "loss 'toy_mse' is registered twice: by plugin 'toy_plugin' and by plugin 'dup_plugin'" in result.stderr


def test_misspelled_hook_implementation_fails_loudly(tmp_path):
    env = _write_module(tmp_path, "typo_plugin", """
        from trackformer import hookimpl
        @hookimpl
        def register_backbone(register):
            pass
    """)
    result = cli("-p", "typo_plugin", "plugins", env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "typo_plugin" in result.stderr and "register_backbone" in result.stderr


def test_broken_plugin_is_one_warning_and_the_rest_works(tmp_path):
    env = _write_module(tmp_path, "broken_plugin", "raise ImportError('needs libfoo')\n")
    result = cli("-p", "broken_plugin", "plugins", "--json", env=env)
    assert result.returncode == 0, result.stderr
    warnings = [ln for ln in result.stderr.splitlines() if "broken_plugin" in ln]
    assert warnings == ["trackformer: warning: plugin 'broken_plugin' failed to load: ImportError: needs libfoo"]
    assert "toy_plugin" in {p["name"] for p in json.loads(result.stdout)["plugins"]}


def _fake_distribution(tmp_path, name, version, entry_name, module):
    info = tmp_path / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[trackformer]\n{entry_name} = {module}\n")


def test_example_plugin_through_entry_points(tmp_path):
    """The third-party path: installed distribution metadata with an entry point in `trackformer`."""
    _fake_distribution(tmp_path, "trackformer-example-plugin", "0.1.0", "example", "trackformer_example_plugin")
    example_src = ROOT / "examples" / "trackformer-example-plugin"
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(example_src), str(TESTS)]),
           "TRACKFORMER_DISABLE_PLUGIN_AUTOLOAD": ""}
    listing = json.loads(cli("plugins", "--json", env=env).stdout)
    example = next(p for p in listing["plugins"] if p["name"] == "example")
    assert example["distribution"] == "trackformer-example-plugin" and example["version"] == "0.1.0"
    assert example["registers"] == {"backbones": ["tiny_cnn"]}
    assert "trackformer-example-plugin 0.1.0" in cli("plugins", env=env).stdout

    run = cli("run", TESTS / "toy.yaml", "model.name=toy_cnn", "model.backbone.name=tiny_cnn",
              "model.backbone.width=8", "data.name=toy_images", f"output_dir={tmp_path / 'run'}",
              "train.epochs=1", env=env)
    assert run.returncode == 0, run.stderr
    typo = cli("run", TESTS / "toy.yaml", "model.name=toy_cnn", "model.backbone.name=tiny_cnn",
               "model.backbone.widht=8", env=env)
    assert typo.returncode == 2 and "model.backbone.widht" in typo.stderr and "width" in typo.stderr

    disabled = cli("plugins", "--json", env={**env, "TRACKFORMER_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert "example" not in {p["name"] for p in json.loads(disabled.stdout)["plugins"]}
    allow = cli("plugins", "--json", env={**env, "TRACKFORMER_PLUGIN_ALLOWLIST": "something_else"})
    assert "example" not in {p["name"] for p in json.loads(allow.stdout)["plugins"]}
    allow = cli("plugins", "--json", env={**env, "TRACKFORMER_PLUGIN_ALLOWLIST": "example"})
    assert "example" in {p["name"] for p in json.loads(allow.stdout)["plugins"]}


def test_unknown_command_and_help_exit_2():
    result = cli("nonsense")
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_core_never_imports_a_plugin():
    """Importing every core module, and loading the builtins, pulls in no plugin package."""
    code = textwrap.dedent("""
        import pkgutil, importlib, sys, trackformer
        for m in pkgutil.walk_packages(trackformer.__path__, "trackformer."):
            if not m.name.endswith("__main__"):
                importlib.import_module(m.name)
        from trackformer.plugins import load_plugins
        load_plugins()
        bad = sorted(m for m in sys.modules if m.startswith(("trackformer_detr", "trackformer_trackq", "trackformer_metric")))
        print(bad)
    """)
    env = {**os.environ, "TRACKFORMER_DISABLE_PLUGIN_AUTOLOAD": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    for path in (ROOT / "trackformer").rglob("*.py"):
        text = path.read_text()
        for plugin in ("trackformer_detr", "trackformer_trackq", "trackformer_metric"):
            assert f"import {plugin}" not in text and f"from {plugin}" not in text, (path, plugin)


def test_lifecycle_hooks_can_log_and_stop_a_run(tmp_path):
    env = _write_module(tmp_path, "stopper_plugin", """
        import json
        from trackformer import hookimpl
        EVENTS = []
        @hookimpl
        def on_run_start(run):
            EVENTS.append("start")
        @hookimpl
        def on_epoch_end(run, epoch, metrics):
            EVENTS.append(f"epoch {epoch}")
            run.should_stop = epoch == 2
        @hookimpl
        def on_eval_end(run, epoch, metrics):
            EVENTS.append(f"eval {epoch} " + ",".join(sorted(metrics)))
        @hookimpl
        def on_run_end(run, metrics):
            EVENTS.append("end")
            (run.output_dir / "events.json").write_text(json.dumps(EVENTS))
    """)
    out = tmp_path / "run"
    result = cli("-p", "stopper_plugin", "run", TESTS / "toy.yaml", f"output_dir={out}", "train.epochs=10", env=env)
    assert result.returncode == 0, result.stderr
    events = __import__("json").loads((out / "events.json").read_text())
    assert events == ["start", "epoch 1", "eval 1 mse", "epoch 2", "eval 2 mse", "end"]
