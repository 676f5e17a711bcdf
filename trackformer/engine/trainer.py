"""The training loop, readable top to bottom.

`train(cfg)` is what `trackformer run CONFIG` calls: `fit(cfg)`, then `fit` of each `compare:` variant.
`fit` is the outer loop (build, resume, epochs, validation, test); `train_one_epoch` the inner one
(forward, loss, backward, step). Under `torchrun` every process runs all of it, the model wrapped in
DistributedDataParallel; only the main process evaluates and writes the run directory.
"""
import itertools
import math
import sys
import time
from contextlib import nullcontext
from typing import Any, Dict, Optional

import torch
from omegaconf import DictConfig, OmegaConf

from .. import plugins
from ..api import build, build_dataset, build_model
from ..checkpoint import load_checkpoint, model_state_from
from ..config import apply_overrides, validate
from ..data.samplers import ShuffledBatchSampler
from ..errors import ConfigError, TrackformerError
from ..run import Run, write_metrics
from ..utils import interactive, progress, resolve_device, seed_everything, to_device, to_float32
from . import distributed as dist
from .freeze import freeze, train_mode
from .optim import build_optimizer, build_scheduler
from .state import TrainState


def train(cfg: DictConfig) -> Dict[str, float]:
    """Fit `cfg`, then each variant of `cfg.compare` ({name: [overrides]}) in `<output_dir>/<name>`;
    the variants' metrics join the run's `metrics.json` as `<name>/<metric>`."""
    metrics = fit(cfg)
    for name, overrides in (cfg.compare or {}).items():
        if dist.is_main():
            print(f"training comparison variant {name!r}: {' '.join(overrides)}", file=sys.stderr)
        variant_metrics = fit(variant_config(cfg, name, list(overrides)))
        metrics.update({f"{name}/{k}": v for k, v in variant_metrics.items() if "/" not in k})
    if cfg.compare and dist.is_main():
        write_metrics(cfg.output_dir, metrics)
    return metrics


def fit(cfg: DictConfig) -> Dict[str, float]:
    """One run: build, resume from `last.pt` (resume=true), train and validate epoch by epoch, test
    the best weights. Returns the metrics written to `metrics.json`."""
    dist.init_from_env(cfg.device)
    device = dist.local_device(resolve_device(cfg.device))
    autocast, scaler = mixed_precision(cfg.train.amp, device)
    seed_everything(cfg.seed)  # same seed on every rank: identical initial weights
    hook = plugins.load_plugins().hook
    run = Run(cfg, writer=dist.is_main())
    tc = cfg.train

    # ---- data, model, objective -------------------------------------------------------------
    train_set, val_set, model, criterion, evaluator = build_parts(cfg, device, run)
    batches = epoch_batches(train_set, tc.batch_size, cfg.seed)
    optimizer = build_optimizer(model, tc)
    scheduler = build_scheduler(optimizer, tc, steps_per_epoch=max(1, len(batches) // tc.accumulate))
    state = TrainState(model, optimizer, scheduler, scaler)
    forward = model
    if dist.is_distributed():
        forward = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=tc.find_unused_parameters)

    # ---- resume, or score the untrained model ------------------------------------------------
    if cfg.resume and run.last_checkpoint.is_file():
        state.load(run.last_checkpoint)
        print(f"resumed from {run.last_checkpoint} at epoch {state.epoch + 1}, batch {state.batch_in_epoch}",
              file=sys.stderr)
    elif tc.eval_before and evaluator is not None and dist.is_main():
        untrained = evaluate(evaluator, model, build_dataset(cfg, "test"), device, run, "untrained")
        state.metrics.update({f"untrained/{k}": v for k, v in untrained.items()})
    run.truncate_log(state.log_lines)  # drop what a killed run logged after its last checkpoint
    hook.on_run_start(run=run)

    # ---- train -------------------------------------------------------------------------------
    loader_kwargs = dict(num_workers=tc.num_workers, collate_fn=getattr(train_set, "collate_fn", None),
                         pin_memory=device.type == "cuda")
    for epoch in range(state.epoch, tc.epochs):
        batches.set_epoch(epoch)
        remaining = list(itertools.islice(iter(batches), state.batch_in_epoch, None))
        # Its own generator: creating the loader must not draw from the global RNG, or a resumed
        # epoch would see different augmentations than an uninterrupted one.
        loader = torch.utils.data.DataLoader(train_set, batch_sampler=remaining,
                                             generator=torch.Generator().manual_seed(cfg.seed + epoch),
                                             **loader_kwargs)
        tic = time.monotonic()
        means = train_one_epoch(state, forward, criterion, loader, device, autocast, tc, run)
        epoch_metrics = {**{f"train/{k}": v for k, v in means.items()},
                         "epoch_seconds": time.monotonic() - tic}
        run.log({"epoch": epoch + 1, "step": state.global_step, **epoch_metrics}, step=state.global_step)
        if dist.is_main():
            print(format_record({"epoch": epoch + 1, **epoch_metrics}), file=sys.stderr, flush=True)
        hook.on_epoch_end(run=run, epoch=epoch + 1, metrics=epoch_metrics)

        done = epoch + 1 == tc.epochs or bool(tc.max_steps and state.global_step >= tc.max_steps) \
            or run.should_stop
        is_best = False
        if evaluator is not None and val_set is not None and dist.is_main() and (
                (tc.eval_every and (epoch + 1) % tc.eval_every == 0) or done):
            val = evaluate(evaluator, model, val_set, device, run, f"val epoch {epoch + 1}")
            run.log({"epoch": epoch + 1, "step": state.global_step, **{f"val/{k}": v for k, v in val.items()}})
            hook.on_eval_end(run=run, epoch=epoch + 1, metrics=val)
            is_best = keep_if_best(state, val, tc.best_metric, tc.best_mode, epoch + 1)
        state.epoch, state.batch_in_epoch = epoch + 1, 0
        save(run, state, is_best)
        dist.barrier()
        if done:
            break

    # ---- test with the best weights ----------------------------------------------------------
    metrics = dict(state.metrics)
    if dist.is_main():
        if evaluator is not None:
            metrics.update(evaluate_best(cfg, evaluator, model, device, run))
        metrics["train_steps"] = state.global_step
        run.finish(metrics)
        hook.on_run_end(run=run, metrics=metrics)
    dist.barrier()
    return metrics


def build_parts(cfg: DictConfig, device, run: Run):
    """The training and validation splits and what is built from the config: (train_set, val_set,
    model, criterion, evaluator). The model takes what it needs from the training split's `info`
    (saved as data_info.json). A bad input met here removes the run directory just made."""
    try:
        train_set = build_dataset(cfg, "train")
        if train_set is None or len(train_set) == 0:
            raise ConfigError("data", "the training split is empty")
        data_info = dict(getattr(train_set, "info", {}) or {})
        run.save_data_info(data_info)
        model = build_model(cfg, data_info).to(device)
        check_classes(model, data_info)
        run.model = model  # for the lifecycle hooks
        matcher = build("matchers", cfg.matcher) if cfg.matcher is not None else None
        if cfg.loss is None:
            raise ConfigError("loss", "training needs a loss; set loss.name")
        criterion = build("losses", cfg.loss, matcher=matcher, model=model).to(device)
        evaluator = build("evaluators", cfg.evaluator, data_info=data_info) if cfg.evaluator is not None else None
        return train_set, build_dataset(cfg, "val"), model, criterion, evaluator
    except TrackformerError:
        run.abandon()
        raise


def evaluate_best(cfg: DictConfig, evaluator, model, device, run: Run) -> Dict[str, float]:
    """The test split's metrics of the best weights (`best.pt`; the last ones when no validation ran)."""
    if run.best_checkpoint.is_file():
        model.load_state_dict(model_state_from(load_checkpoint(run.best_checkpoint), run.best_checkpoint))
    test_set = build_dataset(cfg, "test")
    return evaluate(evaluator, model, test_set, device, run, "test") if test_set is not None else {}


def train_one_epoch(state: TrainState, model, criterion, loader, device, autocast, tc, run: Run) -> Dict[str, float]:
    """Train on `loader`, the rest of epoch `state.epoch + 1` from batch `state.batch_in_epoch`: an
    optimizer step every `tc.accumulate` batches (and at the epoch's last batch), a log line every
    `tc.log_every` steps, `last.pt` every `tc.checkpoint_every` steps. `model` is what runs the
    forward pass (the DDP wrapper when distributed). Returns the epoch's mean of each loss term."""
    frozen = list(tc.freeze) if state.epoch >= tc.freeze_from_epoch else []
    freeze(state.model, frozen)  # `train.freeze`: no gradients, eval mode
    train_mode(state.model, frozen)
    criterion.train()
    epoch, first = state.epoch, state.batch_in_epoch
    num_batches, done = first + len(loader), first
    sums = state.loss_sums  # over this epoch's batches so far: a resumed epoch continues them
    for i, (inputs, targets) in enumerate(progress(loader, desc=f"epoch {epoch + 1}/{tc.epochs}"), start=first):
        inputs, targets = to_device(inputs, device), to_device(targets, device)
        with autocast:
            outputs = model(inputs, targets)
        losses = criterion(to_float32(outputs), targets)  # float32: bf16 boxes are only good to ~1e-2
        loss = losses["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch + 1}, batch {i}: "
                                     f"{ {k: scalar(v) for k, v in losses.items()} }")
        state.scaler.scale(loss / tc.accumulate).backward()
        if (i + 1) % tc.accumulate == 0 or i + 1 == num_batches:
            if tc.clip_max_norm > 0:
                state.scaler.unscale_(state.optimizer)
                torch.nn.utils.clip_grad_norm_(state.model.parameters(), tc.clip_max_norm)
            state.scaler.step(state.optimizer)
            state.scaler.update()
            state.optimizer.zero_grad(set_to_none=True)
            state.scheduler.step()
            state.global_step += 1
        logged = {k: scalar(v) for k, v in losses.items()}
        for key, value in logged.items():
            sums[key] = sums.get(key, 0.0) + value
        done = i + 1
        on_boundary = state.global_step > 0 and (i + 1) % tc.accumulate == 0
        if on_boundary and state.global_step % tc.log_every == 0:
            record = {"epoch": epoch + 1, "step": state.global_step, "lr": state.optimizer.param_groups[0]["lr"],
                      **logged}
            run.log(record, step=state.global_step)
            if not interactive() and dist.is_main():
                print(format_record(record), file=sys.stderr, flush=True)
        if on_boundary and tc.checkpoint_every and state.global_step % tc.checkpoint_every == 0:
            state.batch_in_epoch = i + 1
            save(run, state)
        if tc.max_steps and state.global_step >= tc.max_steps:
            break
    state.loss_sums = {}
    return {k: v / max(1, done) for k, v in sums.items()}


def keep_if_best(state: TrainState, val: Dict[str, float], best_metric: str, mode: str, epoch: int) -> bool:
    """Whether `val` is the best validation so far; if so its metrics become the run's `val/*`."""
    if best_metric not in val:
        raise ConfigError("train.best_metric", f"{best_metric!r} is not among the validation metrics: "
                                               f"{', '.join(sorted(val))}")
    value = val[best_metric]
    if state.best is not None and not (value > state.best if mode == "max" else value < state.best):
        return False
    state.best = value
    state.metrics.update({f"val/{k}": v for k, v in val.items()}, best_epoch=epoch)
    return True


def save(run: Run, state: TrainState, is_best: bool = False):
    """`last.pt` (and `best.pt`, the model alone) from the main process."""
    state.log_lines = run.log_lines
    run.save(state.state_dict(), best=is_best)


def epoch_batches(dataset, batch_size: int, seed: int):
    """The batches of each epoch, the same for a given (seed, epoch) on any restart and sharded across
    processes: the data set's own `batch_sampler(batch_size, seed, rank, world_size)` when it has one,
    shuffled batches otherwise. `set_epoch(e)` selects the epoch."""
    custom = getattr(dataset, "batch_sampler", None)
    if callable(custom):
        return custom(batch_size, seed, dist.rank(), dist.world_size())
    return ShuffledBatchSampler(len(dataset), batch_size, seed, dist.rank(), dist.world_size(), drop_last=False)


def check_classes(model, data_info):
    """A model with fewer classes than its training data would index past its class head."""
    have, need = getattr(model, "num_classes", None), data_info.get("num_classes")
    if have is not None and need is not None and have < need:
        raise ConfigError("model.num_classes", f"is {have} but the data have {need} classes")


AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def mixed_precision(amp: Optional[str], device: torch.device):
    """(autocast context, GradScaler) for `train.amp` (None: float32). bf16 keeps float32's
    exponent range, so it needs no loss scaling; fp16 does, and is CUDA-only (CPU float16 matmuls
    are not fast)."""
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError("train.amp", f"fp16 needs a CUDA device (device is {device.type}); use bf16")
    autocast = torch.autocast(device.type, dtype=AMP_DTYPES[amp]) if amp else nullcontext()
    return autocast, torch.amp.GradScaler("cuda", enabled=amp == "fp16")


@torch.no_grad()
def evaluate(evaluator, model, dataset, device, run: Run, what: str) -> Dict[str, float]:
    tic = time.monotonic()
    was_training = model.training
    model.eval()
    results = evaluator.evaluate(model, dataset, device=device, output_dir=run.output_dir)
    model.train(was_training)
    results = {k: float(v) for k, v in results.items()}
    print(f"{what}: {format_record(results)} ({time.monotonic() - tic:.1f}s)", file=sys.stderr, flush=True)
    return results


def variant_config(cfg: DictConfig, name: str, overrides) -> DictConfig:
    raw = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    raw.compare = {}  # a variant never trains variants of its own
    raw = apply_overrides(raw, [*overrides, f"output_dir={cfg.output_dir}/{name}",
                                "train.eval_before=false", "resume=false"])
    variant = validate(raw)
    OmegaConf.set_readonly(variant, True)
    return variant


def scalar(value) -> float:
    return value.detach().item() if isinstance(value, torch.Tensor) else float(value)


def format_record(record: Dict[str, Any]) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}" if math.isfinite(v) else str(v)
        return str(v)
    return " ".join(f"{k}={fmt(v)}" for k, v in record.items() if k != "time")
