"""The core's own sub-commands: `run`, `config show`, `config list`, `plugins`."""
import json
import sys

from ..hookspecs import hookimpl


def _add_config_args(parser):
    parser.add_argument("config", help="a shipped config's name (see `trackformer config list`) or a YAML file")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. train.epochs=2")


def run_command(args) -> int:
    from ..config import load_config
    from ..engine import distributed as dist
    from ..engine.trainer import train

    cfg = load_config(args.config, args.overrides)
    metrics = train(cfg)  # the run, then its `compare:` variants one after the other
    main = dist.is_main()  # under torchrun only the main process has the test metrics
    dist.cleanup()
    if not main:
        return 0
    if metrics:
        width = max(len(k) for k in metrics)
        print("\n".join(f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}"
                        for k, v in sorted(metrics.items())), file=sys.stderr)
    if args.json:
        print(json.dumps(metrics, indent=2, sort_keys=True))
    return 0


def config_show(args) -> int:
    from ..config import load_config, to_yaml

    print(to_yaml(load_config(args.config, args.overrides)), end="")
    return 0


def config_list(args) -> int:
    from ..named_configs import named_configs

    configs = sorted(named_configs().values(), key=lambda c: (c.plugin, c.name))
    if args.json:
        print(json.dumps([{"name": c.name, "plugin": c.plugin, "path": str(c.path), "description": c.description}
                          for c in configs], indent=2))
        return 0
    width = max((len(c.name) for c in configs), default=0)
    plugin_width = max((len(c.plugin) for c in configs), default=0)
    for c in configs:
        print(f"{c.name:<{width}}  {c.plugin:<{plugin_width}}  {c.description}")
    return 0


def plugins_command(args) -> int:
    from ..plugins import load_plugins

    loaded = load_plugins()
    if args.json:
        kinds = {kind: {e.name: {"plugin": e.plugin, "help": e.help} for e in reg}
                 for kind, reg in loaded.registries.items()}
        plugins = [{"name": p.name, "module": p.module, "source": p.source, "distribution": p.distribution,
                    "version": p.version, "registers": p.registers} for p in loaded.info.values()]
        print(json.dumps({"plugins": plugins, "kinds": kinds}, indent=2))
        return 0
    for p in loaded.info.values():
        origin = f"{p.distribution} {p.version}" if p.distribution else p.source
        print(f"{p.name}  ({origin}; {p.module})")
        for kind, names in sorted(p.registers.items()):
            print(f"    {kind:<13} {', '.join(names)}")
    return 0


@hookimpl
def register_commands(register):
    def run_args(parser):
        _add_config_args(parser)
        parser.add_argument("--json", action="store_true", help="print the final metrics as JSON on stdout")

    register("run", run_command, add_arguments=run_args, help="train and evaluate from a config")
    register("config show", config_show, add_arguments=_add_config_args, help="print the resolved config")
    register("config list", config_list,
             add_arguments=lambda p: p.add_argument("--json", action="store_true", help="machine-readable"),
             help="the configs the plugins ship: name, plugin, description")
    register("plugins", plugins_command,
             add_arguments=lambda p: p.add_argument("--json", action="store_true", help="machine-readable"),
             help="list plugins and what they register")
