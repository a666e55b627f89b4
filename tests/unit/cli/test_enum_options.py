"""Every choice (enum) parameter of every command matches in any case (`--status failed` means FAILED):
each declares `case_sensitive=False` itself, so a new command must too."""

from __future__ import annotations

import enum
import inspect
import typing

import typer
from typer.models import ArgumentInfo, OptionInfo

from embedding_ingest.cli.app import app


def _is_enum(annotation: object) -> bool:
    if isinstance(annotation, type):
        return issubclass(annotation, enum.Enum)
    return any(_is_enum(inner) for inner in typing.get_args(annotation))  # list[E], E | None


def _enum_parameters(typer_app: typer.Typer, path: str = "embedding-ingest"):
    for command in typer_app.registered_commands:
        hints = typing.get_type_hints(command.callback)
        name = command.name or command.callback.__name__
        for parameter in inspect.signature(command.callback).parameters.values():
            if isinstance(parameter.default, OptionInfo | ArgumentInfo) and _is_enum(hints[parameter.name]):
                yield f"{path} {name} {parameter.name}", parameter.default
    for group in typer_app.registered_groups:
        yield from _enum_parameters(group.typer_instance, f"{path} {group.name}")


def test_every_enum_parameter_ignores_case():
    found = dict(_enum_parameters(app))

    assert len(found) > 40  # --output of most commands, kinds, statuses, backends
    assert [name for name, info in found.items() if info.case_sensitive] == []
