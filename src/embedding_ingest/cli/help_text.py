"""`--help` names values the way a reader expects: `Usage: embedding-ingest query [OPTIONS] KIND TEXT`
(an optional argument as `[KIND]`), `FILE`, `TEXT`, `-n N`, `--name NAME`, and every command's short
help is its whole first sentence (wrapped, never cut with "...").

Typer 0.29 writes a required argument as `{name}` in usage lines, an optional one as `[name]` (so a
`[KIND]` metavar became `[[KIND]]`), and each value's Python type (`<str>`, `<int range>`, `<file>`)
where no metavar is given; click cuts a group's short help at 45 characters. `plain_help` rewrites the
built click command tree once, as the top-level group is made (entry.CliGroup)."""

from __future__ import annotations

from typing import Any

from typer import _click
from typer._click import _textwrap
from typer.core import TyperArgument, TyperOption

# Enough for any first sentence: click stops at the first word ending in "." before this.
_WHOLE_SENTENCE = 10_000


class PlainArgument(TyperArgument):
    """A positional argument shown as `NAME` (required) or `[NAME]` (optional) in the usage line, and in
    the Arguments section with its choices (`KIND <line|word>`) but without a Python type (`TEXT`,
    not `text <str>`)."""

    def get_usage_pieces(self, ctx: _click.Context) -> list[str]:
        """The usage line's piece: `NAME`, `[NAME]`, `NAME...` for several values."""
        name = self.metavar or (self.name or "").upper()
        if not self.required:
            name = f"[{name}]"
        return [name + ("..." if self.nargs != 1 else "")]

    def display_type_rich(self, ctx: _click.Context) -> str | None:
        """`<a|b>` for a choice; None (nothing after the name) for any other type."""
        return self.display_type(ctx) if self.type_descriptor.is_choice else None


def value_name(option: TyperOption) -> str:
    """An option's metavar when none was given: `N` for a number, else the last word of its longest
    name (`--name` NAME, `--log-group-name` NAME, `--starting-token` TOKEN)."""
    if option.type_descriptor.annotation in (int, float):
        return "N"
    longest = max(option.opts, key=len).lstrip("-")
    return longest.rsplit("-", 1)[-1].upper()


class WholeWordWrapper(_textwrap.TextWrapper):
    """click's help wrapper, breaking lines at spaces only: never inside `--max-results` or
    `all-MiniLM-L6-v2-int8` (textwrap breaks after hyphens by default, which splits option and model
    names a reader copies)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("break_on_hyphens", False)
        super().__init__(*args, **kwargs)


def _commands(command: _click.Command) -> Any:
    yield command
    for sub in getattr(command, "commands", {}).values():
        yield from _commands(sub)


def plain_help(root: _click.Command) -> None:
    """Rewrite `root`'s command tree in place for `--help` (see the module's docstring); idempotent.
    Values, parsing and error messages are unchanged, except that a missing argument is named by its
    plain metavar (`missing argument 'TEXT'`). Help text wraps at spaces only (WholeWordWrapper: click's
    wrap_text takes its wrapper from click's _textwrap module at each call)."""
    _textwrap.TextWrapper = WholeWordWrapper  # type: ignore[misc]
    for command in _commands(root):
        if not command.short_help and command.help:
            command.short_help = _click.utils.make_default_short_help(command.help, _WHOLE_SENTENCE)
        for param in command.params:
            if isinstance(param, TyperArgument):
                # A metavar such as `[KIND]` (written so before Typer bracketed it) becomes `KIND`.
                param.metavar = (param.metavar or (param.name or "").upper()).strip("[]")
                param.__class__ = PlainArgument  # same fields; only how it is shown changes
            elif (isinstance(param, TyperOption) and param.metavar is None and not param.is_flag
                  and not param.count and not param.type_descriptor.is_choice):
                param.metavar = value_name(param)


__all__ = ["PlainArgument", "WholeWordWrapper", "plain_help", "value_name"]
