"""Broken inputs of a run, each a one-line error naming the culprit: invalid train settings, an
unusable output_dir, corrupt, code-carrying or diverged checkpoints; and atomic writes."""
import os

import pytest
import torch

from core_helpers import TESTS, cli, error_line

TOY = TESTS / "toy.yaml"


@pytest.fixture
def toy_config(toy_plugins):
    from trackformer import load_config

    return lambda *overrides: load_config(TOY, list(overrides))


@pytest.mark.parametrize("override, message", [
    ("train.batch_size=-2", "train.batch_size: must be >= 1, got -2"),
    ("train.batch_size=0", "train.batch_size: must be >= 1, got 0"),
    ("train.epochs=-1", "train.epochs: must be >= 0, got -1"),
    ("train.max_steps=0", "train.max_steps: must be >= 1, got 0"),
    ("train.lr=-0.001", "train.lr: must be >= 0, got -0.001"),
    ("train.lr=.nan", "train.lr: must be >= 0, got nan"),
    ("train.lr_backbone=-1e-5", "train.lr_backbone: must be >= 0, got -1e-05"),
    ("train.accumulate=0", "train.accumulate: must be >= 1, got 0"),
    ("train.log_every=0", "train.log_every: must be >= 1, got 0"),
    ("train.eval_batch_size=0", "train.eval_batch_size: must be >= 1, got 0"),
    ("train.clip_max_norm=-1", "train.clip_max_norm: must be >= 0, got -1.0"),
    ("train.num_workers=-1", "train.num_workers: must be >= 0, got -1"),
    ("train.optimizer=adam", "train.optimizer: Invalid value 'adam', expected one of ['adamw', 'radam', 'sgd']"),
    ("train.schedule=linear", "train.schedule: Invalid value 'linear', expected one of ['step', 'cosine', "
                              "'constant']"),
    ("train.best_mode=maximum", "train.best_mode: Invalid value 'maximum', expected one of ['min', 'max']"),
])
def test_invalid_train_settings_name_the_full_key(toy_config, override, message):
    from trackformer.errors import ConfigError

    with pytest.raises(ConfigError) as error:
        toy_config(override)
    assert str(error.value) == message


def test_valid_edge_values_are_accepted(toy_config):
    cfg = toy_config("train.epochs=0", "train.lr=0", "train.clip_max_norm=0", "train.amp=null", "train.max_steps=1")
    assert cfg.train.epochs == 0 and cfg.train.amp is None


def test_negative_batch_size_on_the_command_line(tmp_path):
    line = error_line(cli("run", TOY, f"output_dir={tmp_path}", "train.batch_size=-2"))
    assert line == "trackformer: error: train.batch_size: must be >= 1, got -2"


def test_output_dir_that_is_a_file(tmp_path):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    line = error_line(cli("run", TOY, f"output_dir={target}"))
    assert line == f"trackformer: error: output_dir: {target} is a file, not a directory"
    line = error_line(cli("run", TOY, f"output_dir={target / 'run'}"))
    assert line == f"trackformer: error: output_dir: cannot create {target / 'run'}: a parent is a file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_output_dir_not_writable(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        line = error_line(cli("run", TOY, f"output_dir={folder}"))
    finally:
        folder.chmod(0o700)
    assert line == f"trackformer: error: output_dir: cannot write to {folder}: Permission denied"


def _damaged_files(tmp_path):
    """name -> path of a file torch.load cannot read, none of which carries code."""
    good = tmp_path / "good.pt"
    torch.save({"model": {"w": torch.ones(64)}}, good)
    data = good.read_bytes()
    legacy = tmp_path / "legacy.pt"
    torch.save({"model": {"w": torch.ones(64)}}, legacy, _use_new_zipfile_serialization=False)
    files = {"text": b"epoch: 3\nloss: 0.5\n", "empty": b"", "truncated": data[: len(data) // 2],
             "garbage pickle": b"\x80\x04 this is not a checkpoint",
             "truncated legacy": legacy.read_bytes()[: len(legacy.read_bytes()) // 2]}
    out = {}
    for name, content in files.items():
        out[name] = tmp_path / f"{name.replace(' ', '_')}.pt"
        out[name].write_bytes(content)
    return out


def test_damaged_checkpoints_are_corrupt_not_malicious(tmp_path):
    from trackformer.checkpoint import load_checkpoint
    from trackformer.errors import DataError

    for name, path in _damaged_files(tmp_path).items():
        with pytest.raises(DataError) as error:
            load_checkpoint(path)
        assert str(error.value) == f"{path}: corrupt checkpoint: truncated, or not a file written by torch.save", name


def test_code_carrying_checkpoints_are_refused(tmp_path):
    from trackformer.checkpoint import load_checkpoint
    from trackformer.errors import DataError

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    for legacy in (False, True):
        path = tmp_path / f"evil{legacy}.pt"
        torch.save({"model": Evil()}, path, _use_new_zipfile_serialization=not legacy)
        with pytest.raises(DataError) as error:
            load_checkpoint(path)
        assert str(error.value) == (f"{path}: refused: the file holds objects that would run code when unpickled "
                                    "(only tensors and plain containers are loaded)")


def test_resume_from_a_truncated_checkpoint(tmp_path):
    out = tmp_path / "run"
    assert cli("run", TOY, f"output_dir={out}", "train.epochs=1").returncode == 0
    data = (out / "last.pt").read_bytes()
    (out / "last.pt").write_bytes(data[: len(data) - 100])
    line = error_line(cli("run", TOY, f"output_dir={out}", "resume=true"))
    assert line == (f"trackformer: error: {out / 'last.pt'}: corrupt checkpoint: truncated, or not a file "
                    "written by torch.save")


def test_non_finite_weights_are_refused(tmp_path):
    out = tmp_path / "run"
    assert cli("run", TOY, f"output_dir={out}", "train.epochs=1").returncode == 0
    best = torch.load(out / "best.pt", weights_only=True)
    best["model"]["head.2.bias"] = torch.tensor([float("nan")])
    torch.save(best, tmp_path / "nan.pt")
    line = error_line(cli("run", TOY, f"output_dir={tmp_path / 'ft'}", f"model.weights={tmp_path / 'nan.pt'}"))
    assert line == (f"trackformer: error: {tmp_path / 'nan.pt'}: refused: weight 'head.2.bias' holds NaN "
                    "(saved from a diverged run?)")
    last = torch.load(out / "last.pt", weights_only=True)
    last["model"]["backbone.weight"][3, 1] = float("-inf")
    torch.save(last, out / "last.pt")
    line = error_line(cli("run", TOY, f"output_dir={out}", "resume=true"))
    assert line == (f"trackformer: error: {out / 'last.pt'}: refused: weight 'backbone.weight' holds Inf "
                    "(saved from a diverged run?)")


def test_atomic_write_leaves_the_target_or_nothing(tmp_path):
    from trackformer.atomic import atomic_write, remove_stale_temporaries, write_json_atomic

    target = tmp_path / "metrics.json"
    write_json_atomic(target, {"a": 1})
    with pytest.raises(ZeroDivisionError):
        with atomic_write(target) as f:
            f.write("{half")
            1 / 0
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # not mkstemp's private 0600
    (tmp_path / ".last.pt.abc.tmp").write_text("killed mid-write")
    assert [p.name for p in remove_stale_temporaries(tmp_path)] == [".last.pt.abc.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_run_that_fails_while_building_leaves_no_new_directory(tmp_path):
    """A bad input found while building the parts (here missing weights or data) is a one-line error,
    and the output directory the run had just made is removed; an existing one is kept."""
    new = tmp_path / "new"
    line = error_line(cli("run", TOY, f"output_dir={new}", f"model.weights={tmp_path / 'missing.pt'}"))
    assert str(tmp_path / "missing.pt") in line and line.startswith("trackformer: error: ")
    assert not new.exists()
    line = error_line(cli("run", TOY, f"output_dir={new}", f"data.root={tmp_path / 'nowhere'}"))
    assert line == f"trackformer: error: data.root: directory not found: {tmp_path / 'nowhere'}"
    assert not new.exists()
    kept = tmp_path / "kept"
    (kept / "notes").mkdir(parents=True)
    error_line(cli("run", TOY, f"output_dir={kept}", f"data.root={tmp_path / 'nowhere'}"))
    assert (kept / "notes").is_dir()
