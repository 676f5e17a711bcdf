"""The training loop, readable top to bottom: build, (resume), train epochs, validate, test, write.

`train(cfg)` is what `trackformer run CONFIG` calls; under `torchrun` every process runs it and the
model is wrapped in DistributedDataParallel.
"""
import itertools
import math
import random
import sys
import time
from contextlib import nullcontext
from typing import Any, Dict, Optional

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from .. import plugins
from ..api import build, build_dataset, build_model
from ..checkpoint import load_checkpoint
from ..config import apply_overrides, validate
from ..errors import ConfigError
from ..run import Run
from ..utils import interactive, progress, resolve_device, seed_everything, to_device, to_float32
from . import distributed as dist
from .optim import build_optimizer, build_scheduler


def train(cfg: DictConfig) -> Dict[str, float]:
    distributed = dist.init_from_env(cfg.device)
    device = dist.local_device(resolve_device(cfg.device))
    autocast, scaler = mixed_precision(cfg.train.amp, device)
    seed_everything(cfg.seed)  # same seed on every rank: identical initial weights
    hook = plugins.load_plugins().hook
    run = Run(cfg, writer=dist.is_main())

    # ---- data, model, objective -------------------------------------------------------------
    train_set = build_dataset(cfg, "train")
    if train_set is None or len(train_set) == 0:
        raise ConfigError("data", "the training split is empty")
    val_set = build_dataset(cfg, "val")
    data_info = dict(getattr(train_set, "info", {}) or {})
    run.save_data_info(data_info)
    model = build_model(cfg, data_info).to(device)
    run.model = model
    matcher = build("matchers", cfg.matcher) if cfg.matcher is not None else None
    if cfg.loss is None:
        raise ConfigError("loss", "training needs a loss; set loss.name")
    criterion = build("losses", cfg.loss, matcher=matcher, data_info=data_info).to(device)
    evaluator = build("evaluators", cfg.evaluator, data_info=data_info) if cfg.evaluator is not None else None

    tc = cfg.train
    batches = EpochBatches(train_set, tc.batch_size, cfg.seed, dist.rank(), dist.world_size())
    loader_kwargs = dict(num_workers=tc.num_workers, collate_fn=getattr(train_set, "collate_fn", None),
                         pin_memory=device.type == "cuda")
    steps_per_epoch = max(1, len(batches) // tc.accumulate)
    optimizer = build_optimizer(model, tc)
    scheduler = build_scheduler(optimizer, tc, steps_per_epoch)
    ddp_model = model
    if distributed:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=tc.find_unused_parameters)

    # ---- resume ------------------------------------------------------------------------------
    start_epoch, skip_batches, global_step = 0, 0, 0
    best: Optional[float] = None
    metrics: Dict[str, float] = {}
    if cfg.resume and run.last_checkpoint.is_file():
        state = load_checkpoint(run.last_checkpoint)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_epoch, skip_batches = state["epoch"], state["batch_in_epoch"]
        global_step, best = state["global_step"], state["best"]
        metrics = dict(state.get("untrained", {}))
        set_rng_state(state["rng"])
        print(f"resumed from {run.last_checkpoint} at epoch {start_epoch + 1}, batch {skip_batches}",
              file=sys.stderr)
    elif tc.eval_before and evaluator is not None and dist.is_main():
        untrained = evaluate(evaluator, model, build_dataset(cfg, "test"), device, run, "untrained")
        metrics.update({f"untrained/{k}": v for k, v in untrained.items()})

    def checkpoint(epoch: int, batch_in_epoch: int, is_best: bool = False):
        run.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                  "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "epoch": epoch,
                  "batch_in_epoch": batch_in_epoch, "global_step": global_step, "best": best,
                  "rng": get_rng_state(), "untrained": {k: v for k, v in metrics.items()
                                                        if k.startswith("untrained/")}}, best=is_best)

    hook.on_run_start(run=run)

    # ---- train -------------------------------------------------------------------------------
    for epoch in range(start_epoch, tc.epochs):
        model.train()
        criterion.train()
        batches.set_epoch(epoch)
        # Its own generator: creating the loader must not draw from the global RNG, or a resumed
        # epoch would see different augmentations than an uninterrupted one.
        loader = torch.utils.data.DataLoader(train_set, batch_sampler=batches.skip(skip_batches),
                                             generator=torch.Generator().manual_seed(cfg.seed + epoch),
                                             **loader_kwargs)
        sums: Dict[str, float] = {}
        count = 0
        tic = time.monotonic()
        for i, (inputs, targets) in enumerate(progress(loader, desc=f"epoch {epoch + 1}/{tc.epochs}"),
                                              start=skip_batches):
            inputs, targets = to_device(inputs, device), to_device(targets, device)
            with autocast:
                outputs = ddp_model(inputs, targets)
            # matching and losses in float32: bf16 boxes are only good to ~1e-2
            losses = criterion(to_float32(outputs), targets)
            loss = losses["loss"]
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch + 1}, batch {i}: "
                                         f"{ {k: scalar(v) for k, v in losses.items()} }")
            scaler.scale(loss / tc.accumulate).backward()
            if (i + 1) % tc.accumulate == 0 or i + 1 == len(batches):
                if tc.clip_max_norm > 0:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), tc.clip_max_norm)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                global_step += 1
            logged = {k: scalar(v) for k, v in losses.items()}
            for key, value in logged.items():
                sums[key] = sums.get(key, 0.0) + value
            count += 1
            if global_step and global_step % tc.log_every == 0 and (i + 1) % tc.accumulate == 0:
                record = {"epoch": epoch + 1, "step": global_step, "lr": optimizer.param_groups[0]["lr"], **logged}
                run.log(record, step=global_step)
                if not interactive() and dist.is_main():
                    print(format_record(record), file=sys.stderr, flush=True)
            if tc.checkpoint_every and global_step and global_step % tc.checkpoint_every == 0 \
                    and (i + 1) % tc.accumulate == 0:
                checkpoint(epoch, i + 1)
            if tc.max_steps and global_step >= tc.max_steps:
                break
        skip_batches = 0
        epoch_metrics = {f"train/{k}": v / max(1, count) for k, v in sums.items()}
        epoch_metrics["epoch_seconds"] = time.monotonic() - tic
        run.log({"epoch": epoch + 1, "step": global_step, **epoch_metrics}, step=global_step)
        if dist.is_main():
            print(format_record({"epoch": epoch + 1, **epoch_metrics}), file=sys.stderr, flush=True)
        hook.on_epoch_end(run=run, epoch=epoch + 1, metrics=epoch_metrics)

        done = epoch + 1 == tc.epochs or bool(tc.max_steps and global_step >= tc.max_steps) or run.should_stop
        is_best = False
        if evaluator is not None and val_set is not None and dist.is_main() and (
                (tc.eval_every and (epoch + 1) % tc.eval_every == 0) or done):
            val = evaluate(evaluator, model, val_set, device, run, f"val epoch {epoch + 1}")
            run.log({"epoch": epoch + 1, "step": global_step, **{f"val/{k}": v for k, v in val.items()}})
            hook.on_eval_end(run=run, epoch=epoch + 1, metrics=val)
            if tc.best_metric not in val:
                raise ConfigError("train.best_metric", f"{tc.best_metric!r} is not among the validation "
                                                       f"metrics: {', '.join(sorted(val))}")
            value = val[tc.best_metric]
            is_best = best is None or (value > best if tc.best_mode == "max" else value < best)
            if is_best:
                best = value
                metrics.update({f"val/{k}": v for k, v in val.items()})
                metrics["best_epoch"] = epoch + 1
        checkpoint(epoch + 1, 0, is_best=is_best)
        dist.barrier()
        if done:
            break

    # ---- test with the best weights ----------------------------------------------------------
    if dist.is_main():
        if evaluator is not None:
            if run.best_checkpoint.is_file():
                model.load_state_dict(load_checkpoint(run.best_checkpoint)["model"])
            test_set = build_dataset(cfg, "test")
            if test_set is not None:
                metrics.update(evaluate(evaluator, model, test_set, device, run, "test"))
        metrics["train_steps"] = global_step
        for name, overrides in (cfg.compare or {}).items():
            variant = variant_config(cfg, name, list(overrides))
            print(f"training comparison variant {name!r}: {' '.join(overrides)}", file=sys.stderr)
            variant_metrics = train(variant)
            metrics.update({f"{name}/{k}": v for k, v in variant_metrics.items() if "/" not in k})
        run.finish(metrics)
        hook.on_run_end(run=run, metrics=metrics)
    dist.barrier()
    return metrics


AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def mixed_precision(amp: Optional[str], device: torch.device):
    """(autocast context, GradScaler) for `train.amp` (None: float32). bf16 keeps float32's
    exponent range, so it needs no loss scaling; fp16 does, and is CUDA-only (CPU float16 matmuls
    are not fast)."""
    if amp is not None and amp not in AMP_DTYPES:
        raise ConfigError("train.amp", f"must be null (float32), bf16 or fp16, got {amp!r}")
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError("train.amp", f"fp16 needs a CUDA device (device is {device.type}); "
                                       "use bf16")
    autocast = torch.autocast(device.type, dtype=AMP_DTYPES[amp]) if amp else nullcontext()
    return autocast, torch.amp.GradScaler("cuda", enabled=amp == "fp16")


class EpochBatches:
    """Shuffled batches of indices, the same order for a given (seed, epoch) on any restart, sharded
    across processes like DistributedSampler; uses the data set's own `batch_sampler` when it has one."""

    def __init__(self, dataset, batch_size: int, seed: int, rank: int, world_size: int):
        custom = getattr(dataset, "batch_sampler", None)
        if callable(custom):
            self.sampler = custom(batch_size, seed, rank, world_size)
        else:
            shuffled = torch.utils.data.DistributedSampler(dataset, num_replicas=world_size, rank=rank,
                                                           shuffle=True, seed=seed)
            self.sampler = _BatchedSampler(shuffled, batch_size)

    def set_epoch(self, epoch: int):
        self.sampler.set_epoch(epoch)

    def skip(self, n: int):
        return list(itertools.islice(iter(self.sampler), n, None))

    def __len__(self):
        return len(self.sampler)


class _BatchedSampler:
    def __init__(self, sampler, batch_size: int):
        self.sampler = sampler
        self.batches = torch.utils.data.BatchSampler(sampler, batch_size, drop_last=False)

    def set_epoch(self, epoch: int):
        self.sampler.set_epoch(epoch)

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


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


def get_rng_state() -> Dict[str, Any]:
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
             "numpy": torch.from_numpy(np_state[1].astype(np.int64)), "numpy_pos": int(np_state[2])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]):
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
