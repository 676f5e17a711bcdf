"""The engine: run directory contents, kill-and-resume exactness, 2-process DDP equivalence."""
import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from core_helpers import TESTS, cli

TOY = TESTS / "toy.yaml"


def _weights(run_dir):
    return torch.load(run_dir / "last.pt", weights_only=True)["model"]


def test_run_directory_contents(tmp_path):
    out = tmp_path / "run"
    result = cli("run", TOY, f"output_dir={out}", "--json")
    assert result.returncode == 0, result.stderr
    for name in ("config.yaml", "env.json", "metrics.jsonl", "metrics.json", "last.pt", "best.pt", "data_info.json"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert json.loads(result.stdout) == metrics
    assert all(isinstance(v, (int, float)) for v in metrics.values())
    assert {"mse", "val/mse", "best_epoch", "train_steps"} <= set(metrics)
    lines = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("train/loss" in ln for ln in lines) and any("val/mse" in ln for ln in lines)
    env = json.loads((out / "env.json").read_text())
    assert env["torch"] == torch.__version__
    # Training reduced the loss: the first logged step's loss is above the last epoch's mean.
    steps = [ln for ln in lines if "loss" in ln]
    epochs = [ln for ln in lines if "train/loss" in ln]
    assert epochs[-1]["train/loss"] < steps[0]["loss"]
    assert not list(out.glob(".*.tmp")), "temporary checkpoint files left behind"


def test_bf16_mixed_precision_trains_float32_weights(tmp_path):
    runs = {}
    for amp in ("null", "bf16"):
        out = tmp_path / amp
        result = cli("run", TOY, f"output_dir={out}", f"train.amp={amp}", "train.epochs=6")
        assert result.returncode == 0, result.stderr
        runs[amp] = json.loads((out / "metrics.json").read_text())["mse"]
        assert all(w.dtype == torch.float32 for w in _weights(out).values())
    untrained = json.loads(cli("run", TOY, f"output_dir={tmp_path / 'zero'}", "train.epochs=0",
                               "--json").stdout)["mse"]
    # bf16 learns as float32 does: both far below the untrained error, and close to each other
    assert runs["bf16"] < 0.5 * untrained and runs["null"] < 0.5 * untrained
    assert runs["bf16"] == pytest.approx(runs["null"], rel=0.2)
    assert runs["bf16"] != runs["null"]  # autocast really ran in bf16


def test_to_float32_casts_nested_half_tensors_and_keeps_autograd():
    from trackformer.utils import to_float32

    w = torch.ones(3, requires_grad=True)
    tree = {"a": (w * 2).bfloat16(), "b": [torch.zeros(2, dtype=torch.float16), torch.arange(3)],
            "c": "text"}
    out = to_float32(tree)
    assert out["a"].dtype == torch.float32 and out["b"][0].dtype == torch.float32
    assert out["b"][1].dtype == torch.int64 and out["c"] == "text"
    out["a"].sum().backward()
    assert torch.equal(w.grad, torch.full((3,), 2.0))


def _jsonl(run_dir, drop=("time", "epoch_seconds")):
    """metrics.jsonl without its wall-clock fields (the only ones that differ between two runs)."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(ln).items() if k not in drop} for ln in lines]


def test_sigkill_then_resume_gives_the_same_weights_and_metrics(tmp_path):
    args = ["run", TOY, "model.dropout=0.3", "train.checkpoint_every=3", "train.epochs=3"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert cli(*args, f"output_dir={straight}").returncode == 0
    # killed at the 15th forward: step 14 was logged after the checkpoint of step 12
    result = cli(*args, f"output_dir={killed}", env={"TOY_KILL_AT_FORWARD": "15"})
    assert result.returncode == -signal.SIGKILL, result.stderr
    before = torch.load(killed / "last.pt", weights_only=True)
    assert (before["epoch"], before["batch_in_epoch"]) == (1, 4)  # 8 batches an epoch, saved at step 12
    assert [ln["step"] for ln in _jsonl(killed) if "loss" in ln][-1] == 14
    # what a kill during a checkpoint or metrics write leaves behind
    for stale in (".last.pt.k1ll3d.tmp", ".metrics.json.tmp"):
        (killed / stale).write_bytes(b"half a file")
    resumed = cli(*args, f"output_dir={killed}", "resume=true")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stderr
    a, b = _weights(straight), _weights(killed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # metrics.json holds no wall-clock value: equal as a whole, best_epoch and val/* included
    metrics = json.loads((killed / "metrics.json").read_text())
    assert {"best_epoch", "val/mse", "mse", "train_steps"} <= set(metrics)
    assert metrics == json.loads((straight / "metrics.json").read_text())
    # every step logged once, every value as in the uninterrupted run (epoch means included)
    assert _jsonl(killed) == _jsonl(straight)
    assert not list(killed.glob(".*.tmp"))


def test_corrupt_and_unsafe_checkpoints_are_refused(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.pt").write_bytes(b"\x80\x04 this is not a checkpoint")
    line = cli("run", TOY, f"output_dir={out}", "resume=true").stderr.strip().splitlines()[-1]
    assert line == (f"trackformer: error: {out / 'last.pt'}: corrupt checkpoint: truncated, or not a file "
                    "written by torch.save")  # damaged, not malicious

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"model": Evil()}, out / "last.pt")
    result = cli("run", TOY, f"output_dir={out}", "resume=true")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"trackformer: error: {out / 'last.pt'}: refused: the file holds objects that would run code when "
        "unpickled (only tensors and plain containers are loaded)")
    assert "pwned" not in result.stdout


def test_weights_loading_strict_and_fine_tune(tmp_path):
    out = tmp_path / "run"
    assert cli("run", TOY, f"output_dir={out}", "train.epochs=1").returncode == 0
    ok = cli("run", TOY, f"output_dir={tmp_path / 'ft'}", f"model.weights={out / 'best.pt'}", "train.epochs=1")
    assert ok.returncode == 0, ok.stderr
    bad = cli("run", TOY, f"output_dir={tmp_path / 'ft2'}", f"model.weights={out / 'best.pt'}", "model.hidden=4")
    assert bad.returncode == 2 and "weights do not fit the model" in bad.stderr
    loose = cli("run", TOY, f"output_dir={tmp_path / 'ft3'}", f"model.weights={out / 'best.pt'}", "model.hidden=4",
                "model.weights_strict=false", "train.epochs=1")
    assert loose.returncode == 0, loose.stderr


def _torchrun(*args, nproc=2):
    """`torchrun --nproc_per_node 2 -m trackformer -p toy_plugin ARGS` on CPU (gloo), this checkout's code."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "CI": "1", "OMP_NUM_THREADS": "1", "TRACKFORMER_DISABLE_PLUGIN_AUTOLOAD": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "trackformer", "-p", "toy_plugin", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=TESTS, timeout=300)


def test_two_process_ddp_matches_one_process_on_the_combined_batch(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert cli("run", TOY, f"output_dir={one}", "train.batch_size=8").returncode == 0
    result = _torchrun("run", TOY, f"output_dir={two}", "train.batch_size=4")
    assert result.returncode == 0, result.stderr[-3000:]
    a, b = _weights(one), _weights(two)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    assert json.loads((two / "metrics.json").read_text())["train_steps"] == 24


def test_compare_variants_under_two_process_ddp(tmp_path):
    """Every process trains every variant (a variant is another `fit`, not a call made by rank 0 alone)."""
    out = tmp_path / "run"
    result = _torchrun("run", TOY, f"output_dir={out}", "train.epochs=1", "train.batch_size=4",
                       "compare={small: [model.hidden=2]}", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert json.loads(result.stdout) == metrics  # printed once, by the main process
    assert metrics["train_steps"] == metrics["small/train_steps"] == 8  # 64 samples / (2 x 4) per step
    small = json.loads((out / "small" / "metrics.json").read_text())
    assert metrics["small/mse"] == small["mse"] and metrics["small/best_epoch"] == 1
    assert torch.load(out / "small" / "last.pt", weights_only=True)["model"]["backbone.weight"].shape == (2, 8)


def test_compare_variants_and_untrained_metrics(tmp_path):
    out = tmp_path / "run"
    result = cli("run", TOY, f"output_dir={out}", "train.epochs=1", "train.eval_before=true",
                 "compare={small: [model.hidden=2], big: [model.hidden=32]}")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"mse", "untrained/mse", "small/mse", "big/mse"} <= set(metrics)
    assert not any(k.count("/") > 1 for k in metrics)  # variants train no variants of their own
    assert metrics["untrained/mse"] > metrics["mse"]
    small = torch.load(out / "small" / "last.pt", weights_only=True)["model"]
    assert small["backbone.weight"].shape == (2, 8)
    assert not (out / "small" / "small").exists()
