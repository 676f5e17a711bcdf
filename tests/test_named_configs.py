"""Configs addressable by name: a plugin ships a folder of configs through the `config_dirs` hook;
`run`, `config show` and `extends:` take a bare name, `config list` lists them, and an unknown name
is one line with the close names."""
import json
import os
import textwrap

import pytest

from core_helpers import TESTS, cli

PLUGIN = """
    from pathlib import Path

    from trackformer import hookimpl


    @hookimpl
    def config_dirs():
        return [Path(__file__).parent / "shipped"]
"""


@pytest.fixture
def shipping(tmp_path):
    """A plugin module `shipping_plugin` whose folder ships toy_base (the core tests' toy run) and
    toy_short (extends toy_base by name, one epoch); returns the environment that loads it."""
    (tmp_path / "shipping_plugin.py").write_text(textwrap.dedent(PLUGIN))
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    toy = (TESTS / "toy.yaml").read_text().split("\n", 1)[1]
    (shipped / "toy_base.yaml").write_text("# the toy regression run\n#\n# more words\n" + toy)
    (shipped / "toy_short.yaml").write_text("# the toy run, one epoch\nextends: [toy_base]\ntrain: {epochs: 1}\n")
    (shipped / "notes.txt").write_text("not a config")
    path = os.pathsep.join([str(tmp_path), str(TESTS), os.environ.get("PYTHONPATH", "")])
    return {"PYTHONPATH": path, "TRACKFORMER_PLUGINS": "shipping_plugin"}


def test_config_list_names_plugin_and_title(shipping):
    result = cli("config", "list", env=shipping)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "toy_base   shipping_plugin  the toy regression run",
        "toy_short  shipping_plugin  the toy run, one epoch",
    ]
    listing = json.loads(cli("config", "list", "--json", env=shipping).stdout)
    assert [(c["name"], c["plugin"]) for c in listing] == [("toy_base", "shipping_plugin"),
                                                          ("toy_short", "shipping_plugin")]


def test_run_and_show_take_a_bare_name_and_extends_resolves_names(shipping, tmp_path):
    show = cli("config", "show", "toy_short", "train.lr=0.02", env=shipping)
    assert show.returncode == 0, show.stderr
    assert "seed: 3" in show.stdout and "epochs: 1" in show.stdout and "lr: 0.02" in show.stdout
    # a file of one's own extends a shipped config by name
    (tmp_path / "mine.yaml").write_text("extends: [toy_short]\nseed: 5\n")
    mine = cli("config", "show", tmp_path / "mine.yaml", env=shipping)
    assert mine.returncode == 0, mine.stderr
    assert "seed: 5" in mine.stdout and "epochs: 1" in mine.stdout
    run = cli("run", "toy_short", f"output_dir={tmp_path / 'run'}", env=shipping)
    assert run.returncode == 0, run.stderr
    assert "epochs: 1" in (tmp_path / "run" / "config.yaml").read_text()
    assert "mse" in json.loads((tmp_path / "run" / "metrics.json").read_text())


def test_unknown_name_is_one_line_with_close_names(shipping, tmp_path):
    result = cli("run", "toy_shrt", env=shipping)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "trackformer: error: unknown config 'toy_shrt' (close: toy_short, toy_base); see `trackformer config list`"]
    (tmp_path / "bad.yaml").write_text("extends: [other]\n")
    result = cli("config", "show", tmp_path / "bad.yaml", env=shipping)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "trackformer: error: unknown config 'other'; see `trackformer config list`"]
    # a path is used as given: no name lookup for anything with a folder or a .yaml suffix
    result = cli("run", "toy_short.yaml", env=shipping)
    assert result.returncode == 2 and result.stderr.splitlines() == [
        f"trackformer: error: config file not found: {TESTS / 'toy_short.yaml'}"]


def test_the_plugins_ship_their_model_families_configs():
    for plugin in ("trackformer_detr", "trackformer_trackq", "trackformer_metric"):
        pytest.importorskip(plugin)
    listing = json.loads(cli("config", "list", "--json", env={"TRACKFORMER_DISABLE_PLUGIN_AUTOLOAD": ""}).stdout)
    plugins = {c["name"]: c["plugin"] for c in listing}
    assert {name: plugins.get(name) for name in ("detr_synthetic", "detr_r50_coco", "trackformer_synthetic",
                                                 "trackformer_mot17", "intrabatch_cub100")} == {
        "detr_synthetic": "detr", "detr_r50_coco": "detr", "trackformer_synthetic": "trackq",
        "trackformer_mot17": "trackq", "intrabatch_cub100": "metric"}
    assert all(c["description"] and os.path.isfile(c["path"]) for c in listing)
