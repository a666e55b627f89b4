"""The command line's one error style and its exit codes.

Every error a user can cause or meet is one line on stderr (JSON on stdout under --output json):

    error: WHAT (WHY); try: COMMAND

and one exit code, chosen here and nowhere else (`exit_code_for`). The codes are part of the
interface (scripts test them) and are listed in `--help` (EXIT_CODES_HELP) and the README."""

from __future__ import annotations

import re
import textwrap

from embedding_ingest.exceptions import ConfigurationError, EmbeddingIngestError, InvalidInputError

EXIT_OK = 0
EXIT_FAILED = 1  # an operation that could not be done (a conflict, a service error, a bug)
EXIT_USAGE = 2  # bad usage or input: a typo'd command or option, a bad value or setting, an unknown name
EXIT_REJECTED = 3  # some records were rejected (each named); the rest was done
EXIT_EXECUTION_FAILED = 4  # a workflow execution ended FAILED, TIMED_OUT or ABORTED
EXIT_INTERRUPTED = 130  # stopped by Ctrl-C (128 + SIGINT, as shells report it)

# Kept for the commands of other issues that import the old name.
EXIT_CONFIGURATION = EXIT_USAGE

EXIT_CODES_HELP = ("Exit codes: 0 done; 1 an operation failed; 2 bad usage or input; 3 some records "
                   "rejected (the rest done); 4 an execution failed; 130 stopped by Ctrl-C.")

# Errors that mean "you asked for something that is not there": the user's input is at fault, so they
# exit 2 like any bad input, whatever layer raised them. Named by class so the CLI need not import
# every package's errors.
_NOT_FOUND = frozenset({"BatchNotFoundError", "VersionNotFoundError", "WorkspaceMissingError",
                        "NothingPublishedError",  # a query or pull before the first publish
                        "UnknownProviderBatchError",
                        # a state machine definition `definitions run` cannot run as given (asl_local)
                        "InvalidDefinitionError", "UnsupportedDefinitionError"})


class CliError(EmbeddingIngestError):
    """An error the CLI itself states: `what` (with its why in parentheses), a `try_` command and the
    exit code (default 2: bad usage or input); `name` is the `error` of its JSON form. Raise it from a
    command; the app prints it in the one style."""

    def __init__(self, what: str, *, try_: str | None = None, code: int = EXIT_USAGE,
                 name: str = "InvalidInputError") -> None:
        super().__init__(what)
        self.what, self.try_, self.code, self.name = what, try_, code, name


def exit_code_for(error: BaseException) -> int:
    """The exit code of an error that ended a command (see the module docstring)."""
    if isinstance(error, CliError):
        return error.code
    if isinstance(error, (InvalidInputError, ConfigurationError)):
        return EXIT_USAGE
    if any(cls.__name__ in _NOT_FOUND for cls in type(error).__mro__):
        return EXIT_USAGE
    return EXIT_FAILED


def one_line(text: str) -> str:
    """Whitespace (newlines, tabs) collapsed: an error is one line whatever the message held."""
    return " ".join(str(text).split())


_SENTENCE_END = re.compile(r"(?<=[a-z'\")\]])\.\s+(?=[A-Z])")


def usage_message(text: str) -> str:
    """Click's usage message in our style: "No such command 'x'. Did you mean 'y'?" ->
    "no such command 'x' (did you mean 'y'?)". Typer 0.29 validates through pydantic, whose
    "Value error, " prefix is dropped."""
    text = one_line(text).replace("Value error, ", "")
    first, *rest = _SENTENCE_END.split(text, maxsplit=1)
    first = first.rstrip(".")
    if len(first) > 1 and first[0].isupper() and first[1].islower():
        first = first[0].lower() + first[1:]
    if rest:
        why = rest[0].rstrip(".")
        why = why[0].lower() + why[1:] if len(why) > 1 and why[1].islower() else why
        return f"{first} ({why})"
    return first


def error_line(what: str, try_: str | None) -> str:
    """`error: WHAT (WHY); try: COMMAND` (without `; try:` when there is nothing to suggest)."""
    line = f"error: {one_line(what)}"
    return f"{line}; try: {try_}" if try_ else line


def at_words(line: str, width: int) -> str:
    """An error line for a terminal `width` columns wide: broken only between words (a long word, a
    path or an ARN, is never cut), the rest indented two spaces, so the terminal never splits a word.
    Piped output keeps the one line (scripts and logs read it whole)."""
    return "\n".join(textwrap.wrap(line, width=max(width, 20), subsequent_indent="  ",
                                    break_long_words=False, break_on_hyphens=False)) or line


__all__ = ["EXIT_CODES_HELP", "EXIT_CONFIGURATION", "EXIT_EXECUTION_FAILED", "EXIT_FAILED",
           "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_REJECTED", "EXIT_USAGE", "CliError", "at_words", "error_line",
           "exit_code_for", "one_line", "usage_message"]
