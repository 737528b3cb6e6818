"""The command line shared by experiments: ``python -m experiments.NAME [--quick] [--out DIR] --key=value ...``.

Each experiment has a frozen ``Config`` dataclass and a dict ``QUICK`` of overrides for a smoke run. Keys
are the dataclass's field names; values are parsed to the field's type. Unknown keys and ill-typed
values are rejected with a message listing the valid keys and their types.
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys


class ConfigError(SystemExit):
    def __init__(self, message):
        super().__init__(2)
        self.message = message
        print(f"error: {message}", file=sys.stderr)


def _parse_value(field, raw: str):
    kind = field.type if isinstance(field.type, type) else {"int": int, "float": float, "str": str, "bool": bool}.get(
        str(field.type).split("|")[0].strip()
    )
    if kind is bool:
        if raw.lower() in ("1", "true", "yes"):
            return True
        if raw.lower() in ("0", "false", "no"):
            return False
        raise ValueError(f"expected true or false, got {raw!r}")
    if kind is int:
        return int(raw)
    if kind is float:
        return float(raw)
    return raw


def valid_keys(config_cls) -> str:
    return ", ".join(f"{f.name} ({f.type if isinstance(f.type, str) else f.type.__name__})" for f in dataclasses.fields(config_cls))


def parse(config_cls, quick: dict, argv: list[str]):
    """Returns ``(config, out_dir or None)`` from ``argv``."""
    overrides, out, use_quick = {}, None, False
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("-h", "--help"):
            print(f"usage: python -m {config_cls.__module__} [--quick] [--out DIR] [--key=value ...]\nkeys: {valid_keys(config_cls)}")
            raise SystemExit(0)
        if arg == "--quick":
            use_quick = True
            continue
        if not arg.startswith("--"):
            raise ConfigError(f"unexpected argument {arg!r}; use --key=value (keys: {valid_keys(config_cls)})")
        name, eq, raw = arg[2:].partition("=")
        if not eq:
            if not args:
                raise ConfigError(f"--{name} needs a value")
            raw = args.pop(0)
        name = name.replace("-", "_")
        if name == "out":
            out = pathlib.Path(raw)
            continue
        if name not in fields:
            raise ConfigError(f"unknown key {name!r}; valid keys: {valid_keys(config_cls)}, and --out, --quick")
        try:
            overrides[name] = _parse_value(fields[name], raw)
        except ValueError as err:
            raise ConfigError(f"bad value for {name}: {err}; valid keys: {valid_keys(config_cls)}") from None
    try:
        return config_cls(**{**(quick if use_quick else {}), **overrides}), out
    except ValueError as err:  # a config's own checks (TrainConfig.__post_init__)
        raise ConfigError(f"{err}") from None


def main(config_cls, quick: dict, run, argv=None):
    """Parses ``argv`` (default ``sys.argv[1:]``) and calls ``run(config, out)``.

    A run folder that is busy or holds another run exits with status 2, a checkpoint that cannot be
    restored with status 1, each with its one-line message (they say what to do) and no traceback.
    """
    from rnnjax.checkpoint import CheckpointError
    from rnnjax.run_dir import RunDirError

    config, out = parse(config_cls, quick, sys.argv[1:] if argv is None else argv)
    try:
        run(config, out)
    except RunDirError as err:
        raise ConfigError(str(err)) from None
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
