"""Settings declared once: a dataclass field whose metadata holds its command-line option.

A configuration (``SearchConfig``, ``CompareConfig``, ``BenchConfig``) declares each setting as a field
made by :func:`option`: its default, help text, type and choices. The commands' argparse options are
generated from those fields by :func:`add_options`, and a parsed namespace maps back with
:func:`values`, so a default is written in one place and every ``--help`` shows it.
:func:`shared` reuses another configuration's field (same default and help) where a command runs
searches with the search's settings.

Example:
    >>> import argparse, dataclasses
    >>> @dataclasses.dataclass
    ... class Config:
    ...     batch_size: int = option(64, "images per batch", type=int)
    ...     quiet: bool = option(False, "no progress lines", flag=True)
    >>> parser = argparse.ArgumentParser()
    >>> add_options(parser, Config)
    >>> values(parser.parse_args(["--batch-size", "32"]), Config)
    {'batch_size': 32, 'quiet': False}
    >>> "images per batch (default: 64)" in parser.format_help()
    True
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Callable, Iterable, Sequence

__all__ = ["option", "shared", "add_options", "values", "command_line_fields"]

_MISSING = dataclasses.MISSING


def option(default: Any = None, help: str = "", *, type: Callable[[str], Any] | None = None,
           choices: Sequence[Any] | None = None, metavar: str | None = None, flag: bool = False,
           shown: str | None = None, check: Callable[[str, Any], Any] | None = None, **extra: Any) -> Any:
    """A dataclass field that is also a command-line option ``--name-with-dashes``.

    ``shown`` is what ``--help`` says the default is when the field's value is not it (``None`` meaning
    "computed": for example "60% of --epochs"); ``flag`` makes a ``store_true`` option, or with a ``None``
    default (set by another setting) a ``--name``/``--no-name`` pair. ``check(name, value)`` raises a
    ValueError naming a bad value; ``extra`` is kept in the metadata for the configuration's own use.
    """
    metadata = {"help": help, "type": type, "choices": tuple(choices) if choices is not None else None,
                "metavar": metavar, "flag": flag, "shown": shown, "check": check, **extra}
    return dataclasses.field(default=default, metadata={"option": metadata})


def shared(config_class: type, name: str, *, default: Any = _MISSING, **changes: Any) -> Any:
    """``config_class``'s field ``name`` as a field of another configuration: same default, help and type.

    ``default`` replaces the default (a command whose own default differs, said in one place: here);
    ``changes`` replaces parts of its option (``help=...`` to say which methods read it).
    """
    source = {field.name: field for field in dataclasses.fields(config_class)}[name]
    metadata = {**source.metadata["option"], **changes}
    if default is not _MISSING:
        return dataclasses.field(default=default, metadata={"option": metadata})
    if source.default_factory is not _MISSING:  # type: ignore[misc]
        return dataclasses.field(default_factory=source.default_factory, metadata={"option": metadata})
    return dataclasses.field(default=source.default, metadata={"option": metadata})


def command_line_fields(config_class: type, names: Iterable[str] | None = None) -> list[dataclasses.Field]:
    """The fields of ``config_class`` that are options (``names``: these, in this order)."""
    fields = {field.name: field for field in dataclasses.fields(config_class) if "option" in field.metadata}
    return [fields[name] for name in names] if names is not None else list(fields.values())


def _default(field: dataclasses.Field) -> Any:
    return field.default_factory() if field.default_factory is not _MISSING else field.default  # type: ignore[misc]


def add_options(parser: argparse.ArgumentParser | Any, config_class: type, names: Iterable[str] | None = None) -> None:
    """Add an option to ``parser`` for each option field of ``config_class`` (``names``: only these)."""
    for field in command_line_fields(config_class, names):
        spec = field.metadata["option"]
        flag = "--" + field.name.replace("_", "-")
        default = _default(field)
        if spec["flag"] and default is None:  # on or off by another setting: --name and --no-name
            text = spec["help"] + (f" (default: {spec['shown']})" if spec["shown"] else "")
            parser.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction, default=None,
                                help=text.replace("%", "%%"))
            continue
        if spec["flag"]:
            parser.add_argument(flag, dest=field.name, action="store_true", help=spec["help"])
            continue
        shown = spec["shown"] if spec["shown"] is not None else (None if default is None else f"{default:g}"
                                                                 if isinstance(default, float) else str(default))
        text = spec["help"] + (f" (default: {shown})" if shown is not None else "")
        parser.add_argument(flag, dest=field.name, type=spec["type"], choices=spec["choices"], metavar=spec["metavar"],
                            default=default, help=text.replace("%", "%%"))


def values(args: argparse.Namespace, config_class: type, names: Iterable[str] | None = None) -> dict[str, Any]:
    """The parsed values of ``config_class``'s option fields (``names``: only these), by field name."""
    return {field.name: getattr(args, field.name) for field in command_line_fields(config_class, names)
            if hasattr(args, field.name)}
