"""The plugin contract. Every hook a plugin may implement, with the shapes its products take.

Registration hooks receive `register(name, factory, schema=None, help="")`; `schema` is a dataclass
whose fields are the component's settings (see docs/plugin-api.md). Shapes use B batch, Q queries,
D model width, L decoder layers, HW flattened feature positions.
"""
import pluggy

hookspec = pluggy.HookspecMarker("trackformer")
hookimpl = pluggy.HookimplMarker("trackformer")


@hookspec(historic=True)
def add_hookspecs(pluginmanager):
    """Add a plugin's own hook specs, e.g. `pluginmanager.add_hookspecs(my_hookspecs)`."""


@hookspec
def register_backbones(register):
    """Image feature extractors: `factory(cfg, **context) -> nn.Module` mapping images
    [B, 3, H, W] to a dict of named feature maps, fine to coarse, e.g. for ResNet-50

        {"res2": [B, 256, H/4, W/4], "res3": [B, 512, H/8, W/8],
         "res4": [B, 1024, H/16, W/16], "res5": [B, 2048, H/32, W/32]}

    and declaring them in the attribute `levels: Dict[str, trackformer.models.levels.Level]`
    (`Level(channels, stride)`), the same names in the same order as the returned dict. Which
    levels a backbone returns is its setting `return_levels` (a list of names; None = the last
    only); the builtin ones name ResNet levels res2..res5 and others by stride (`stride8`, ...).
    Consumers ask for levels by name and read channels from `levels` (DETR takes the last, see
    `trackformer.models.levels.last_level`); the padding mask [B, H, W] is brought to every
    level by `trackformer.models.levels.level_masks`, never by the consumer."""


@hookspec
def register_encoders(register):
    """Attention encoders: `factory(cfg, **context) -> nn.Module` mapping flattened features
    src [HW, B, D] with padding mask [B, HW] and positions [HW, B, D] to memory [HW, B, D]."""


@hookspec
def register_decoders(register):
    """Query decoders: `factory(cfg, **context) -> nn.Module` mapping queries [Q, B, D] and memory
    [HW, B, D] to every layer's normalized output [L, B, Q, D] (the heads see all L for aux losses)."""


@hookspec
def register_matchers(register):
    """Prediction-to-target matchers: `factory(cfg, **context) -> matcher`, where
    `matcher(outputs, targets)` returns per image a pair (pred_idx [M], target_idx [M])."""


@hookspec
def register_losses(register):
    """Training objectives: `factory(cfg, matcher=..., data_info=...) -> nn.Module`, where
    `criterion(outputs, targets)` returns {"loss": scalar to minimize, other scalars to log}."""


@hookspec
def register_architectures(register):
    """Whole models composed of components: `factory(cfg, data_info=...) -> nn.Module`, called as
    `model(inputs, targets=None) -> outputs`. Sub-components are built with `trackformer.build`."""


@hookspec
def register_datasets(register):
    """Data sets: `factory(cfg, split) -> Dataset | None` for split in train/val/test. Optional
    attributes: `collate_fn`, `info` (dict such as num_classes and label maps, saved with the run),
    `batch_sampler(batch_size, seed, rank, world_size)`."""


@hookspec
def register_evaluators(register):
    """Evaluators: `factory(cfg, data_info=...) -> obj` with
    `obj.evaluate(model, dataset, device, output_dir) -> dict[str, float]`."""


@hookspec
def register_commands(register):
    """CLI sub-commands: `register(name, handler, add_arguments=None, help="")`; `handler(args) -> int`.
    A name with a space, e.g. "eval mot", creates a command group."""


@hookspec
def config_dirs():
    """Folders of run configs a plugin ships (`*.yaml`), returned as a list of paths, usually
    `[Path(__file__).parent / "configs"]` with the files declared as package data. Each file is then
    addressable by its stem: `trackformer run detr_synthetic`, `extends: [detr_r50_coco]`; its first
    comment line is its description in `trackformer config list`. A name shipped twice is an error."""


@hookspec
def on_run_start(run):
    """A training run is about to start; `run` is a `trackformer.run.Run`."""


@hookspec
def on_epoch_end(run, epoch, metrics):
    """An epoch ended; `metrics` holds its mean training losses. Set `run.should_stop = True` to stop."""


@hookspec
def on_eval_end(run, epoch, metrics):
    """A validation pass ended with `metrics` (a flat dict of floats)."""


@hookspec
def on_run_end(run, metrics):
    """The run finished; `metrics` is what goes into metrics.json."""
