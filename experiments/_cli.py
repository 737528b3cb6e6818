"""The experiments' command line, on the standard library's ``argparse``.

    python -m experiments.NAME [--quick] [--out DIR] [--fresh] [--FIELD=VALUE ...]     # train
    python -m experiments.NAME COMMAND [ARGS ...]                                       # e.g. sample, predict
    python -m experiments.NAME [COMMAND] --help

Each experiment has a frozen ``Config`` dataclass, whose fields are the options (``--learning_rate=0.01``
or ``--learning-rate 0.01``; a bool option alone means true), and a dict ``QUICK`` of overrides for a smoke
run (``--quick``; options given beside it win). The config checks its own values (``__post_init__``).

Why argparse (not tyro or absl): a user's mistake must end in one line, ``error: …``, and exit status 2,
never a traceback. argparse routes every parse error through ``ArgumentParser.error``, which the Python
docs name as the method to override; tyro 1.0 draws a multi-line box, changeable only through its private
``tyro._errors`` hook, and absl's flags are process-global (the tests call ``main`` many times) and print
"FATAL Flags parsing error" over two lines. argparse also gives subcommands and ``--help`` for each.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import pathlib
import sys
import typing
from typing import Any, Callable, NamedTuple


class ConfigError(SystemExit):
    """A mistake in what the user asked for: prints ``error: MESSAGE`` (one line) and exits with status 2."""

    def __init__(self, message, status: int = 2):
        super().__init__(status)
        self.message = message
        print(f"error: {message}", file=sys.stderr)


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line (``ArgumentParser.error`` is documented to be
    overridden) and whose long options must be spelled out (a prefix such as ``--learn`` is refused)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message):
        raise ConfigError(f"{message} (see {self.prog} --help)")


class Command(NamedTuple):
    """A subcommand: ``arguments(parser)`` declares its options, ``run(args)`` does it."""

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], Any]


def boolean(raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {raw!r}")


def _number(kind, low=None, finite=True, what=""):
    def convert(raw: str):
        try:
            value = kind(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {raw!r}") from None
        if (finite and not math.isfinite(value)) or (low is not None and value < low):
            raise argparse.ArgumentTypeError(f"expected {what or f'a number >= {low}'}, got {raw!r}")
        return value

    convert.__name__ = kind.__name__
    return convert


def positive_int(raw: str) -> int:
    return _number(int, 1, what="an integer >= 1")(raw)


def non_negative_int(raw: str) -> int:
    return _number(int, 0, what="an integer >= 0")(raw)


def temperature(raw: str) -> float:
    """A sampling temperature: finite and >= 0 (0 is greedy: the most likely token every step)."""
    return _number(float, 0.0, what="a finite number >= 0 (0: greedy)")(raw)


def path(raw: str) -> pathlib.Path:
    """A folder or file name; refused when the file system cannot encode it (instead of failing later)."""
    try:
        raw.encode("utf-8")  # argv's undecodable bytes arrive as lone surrogates, which UTF-8 refuses
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"{raw.encode('utf-8', 'backslashreplace').decode()!r} is not a name that can be written "
                                         "as UTF-8 (it holds undecodable bytes); choose another") from None
    return pathlib.Path(raw)


def _field_types(config_cls) -> dict[str, type]:
    hints = typing.get_type_hints(config_cls)
    types = {}
    for field in dataclasses.fields(config_cls):
        kind = hints[field.name]
        if kind not in (int, float, str, bool):
            raise TypeError(f"{config_cls.__name__}.{field.name}: the command line takes int, float, str or bool, not {kind}")
        types[field.name] = kind
    return types


def add_config_arguments(parser: argparse.ArgumentParser, config_cls, quick: dict) -> None:
    """One option per field of ``config_cls``, spelled with ``_`` or ``-``; unset options keep the default."""
    group = parser.add_argument_group(f"{config_cls.__name__} (the run's settings, saved in OUT/config.json)")
    for field in dataclasses.fields(config_cls):
        kind = _field_types(config_cls)[field.name]
        names = [f"--{field.name}"] + ([f"--{field.name.replace('_', '-')}"] if "_" in field.name else [])
        extra = f"; --quick: {quick[field.name]}" if field.name in quick else ""
        common = dict(dest=field.name, default=argparse.SUPPRESS, help=f"default: {field.default}{extra}")
        if kind is bool:
            group.add_argument(*names, type=boolean, nargs="?", const=True, metavar="true|false", **common)
        else:
            convert = {int: _number(int), float: _number(float, finite=False), str: str}[kind]
            group.add_argument(*names, type=convert, metavar=kind.__name__.upper(), **common)


def module_name(config_cls) -> str:
    """``experiments.NAME`` of a config's experiment, also when it runs as ``python -m`` (``__main__``)."""
    module = sys.modules[config_cls.__module__]
    spec = getattr(module, "__spec__", None)
    return spec.name if spec is not None else config_cls.__module__


def _description(config_cls) -> str:
    doc = sys.modules[config_cls.__module__].__doc__ or ""
    return doc.strip()


def config_from(config_cls, values: dict):
    """``config_cls(**values)``, its own checks turned into :class:`ConfigError`."""
    try:
        return config_cls(**values)
    except (TypeError, ValueError) as err:  # TrainConfig.__post_init__ and the experiments' own checks
        raise ConfigError(str(err)) from None


def saved_config(config_cls, out: pathlib.Path):
    """The config of the trained run in ``out``, or a :class:`ConfigError` that says how to train one."""
    from rnnjax.run_dir import RunDirError, read_config

    name = module_name(config_cls)
    try:
        values = read_config(out)
    except RunDirError as err:
        raise ConfigError(f"{err} (train with: python -m {name} --out {out})") from None
    foreign = sorted(set(values) - {f.name for f in dataclasses.fields(config_cls)})
    if foreign:
        raise ConfigError(f"{str(out)!r} holds a run of another experiment, not {name} (its config.json has "
                          f"{', '.join(foreign)}); give the --out of one of its runs")
    return config_from(config_cls, values)


def main(config_cls, quick: dict, run, argv=None, commands: tuple[Command, ...] = (), default_out: str | None = None,
         folder: bool = True):
    """Parses ``argv`` (default ``sys.argv[1:]``): a command's ``run(args)``, or ``run(config, out)`` to train.

    The user's mistakes (bad options and values, a run folder that is busy or holds another run, a saved run
    that cannot be read) exit with status 2 and a one-line ``error: …``; a checkpoint that fails its digest
    or cannot be restored, data that cannot be fetched or read, and a folder that cannot be written, with
    status 1 and the same one line. No traceback.
    """
    from rnnjax.checkpoint import CheckpointError
    from rnnjax.datasets.text import DataError
    from rnnjax.run_dir import RunDirError, start_over

    parser = Parser(prog=f"python -m {module_name(config_cls)}", description=_description(config_cls),
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: the QUICK settings (options given win)")
    if folder:  # ``folder=False``: a tool that prints and keeps no run folder (the benchmark)
        parser.add_argument("--out", type=path, default=None,
                            help=f"the run folder (default: {default_out or 'none: nothing is saved'})")
        parser.add_argument("--fresh", action="store_true",
                            help="start over: delete what an earlier run left in the run folder (else it is resumed)")
    add_config_arguments(parser, config_cls, quick)
    if commands:
        sub = parser.add_subparsers(dest="command", title="commands (none: train)", parser_class=Parser)
        for command in commands:
            p = sub.add_parser(command.name, help=command.help, description=command.help)
            command.arguments(p)
            p.set_defaults(_command=command)
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        if getattr(args, "_command", None) is not None:
            return args._command.run(args)
        overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(config_cls) if hasattr(args, f.name)}
        config = config_from(config_cls, {**(quick if args.quick else {}), **overrides})
        out = getattr(args, "out", None) or (pathlib.Path(default_out) if default_out else None)
        if getattr(args, "fresh", False):
            if out is None:
                raise ConfigError("--fresh starts a run folder over, but this run has none: give --out DIR")
            start_over(out)
        return run(config, out)
    except (RunDirError, ValueError) as err:  # ValueError: a setting that only the data or the model can refuse
        raise ConfigError(str(err)) from None
    except (CheckpointError, DataError, OSError) as err:  # not the user's typo, but nothing a traceback explains
        raise ConfigError(str(err), status=1) from None


def out_argument(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--out", type=path, default=pathlib.Path(default), help=f"the trained run's folder (default: {default})")

