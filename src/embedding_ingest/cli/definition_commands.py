"""`embedding-ingest definitions run FILE.json`: run any JSONPath state machine definition on the local
engine - a stand-in for the retired Step Functions Local. The execution and its history are kept in
the workspace, so describe-execution and get-execution-history show them like any other run."""

from __future__ import annotations

import importlib
import inspect
import json
import re
import shlex
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import typer

from embedding_ingest.cli import workspace
from embedding_ingest.cli.errors import EXIT_EXECUTION_FAILED
from embedding_ingest.cli.output import OutputFormat, OutputOption, emit_json, guarded, hint, stderr
from embedding_ingest.exceptions import InvalidInputError


def _load_handlers(spec: str | None) -> dict[str, Callable[[Any], Any]]:
    """`module:attribute` -> {Lambda function name: callable}. The module is imported with the current
    directory on sys.path (like `python -m`); a callable may take (event) or (event, context)."""
    if not spec:
        return {}
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise InvalidInputError(f"--handlers {spec!r}: expected module:mapping, e.g. my_handlers:HANDLERS")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any failure importing the user's module is theirs to fix
        raise InvalidInputError(f"--handlers {spec!r}: cannot import module {module_name!r}: "
                                f"{type(exc).__name__}: {exc}") from exc
    mapping = getattr(module, attribute, None)
    if not isinstance(mapping, Mapping) or not all(callable(f) for f in mapping.values()):
        raise InvalidInputError(f"--handlers {spec!r}: {attribute} must be a dict of function name -> "
                                "callable")
    return {str(name): _lambda_style(function) for name, function in mapping.items()}


def _lambda_style(function: Callable[..., Any]) -> Callable[[Any], Any]:
    try:
        takes_context = len(inspect.signature(function).parameters) >= 2
    except (TypeError, ValueError):
        takes_context = False
    return (lambda event: function(event, None)) if takes_context else function


def _task_functions(node: Any) -> set[str]:
    """Function names of every Task that names its Lambda function (a function ARN as Resource, or
    lambda:invoke's FunctionName; nested Map/Parallel included); other resources are left to the
    engine, which refuses them at load with its reason."""
    from asl_local.engine.lambda_invoke import function_name_in

    found: set[str] = set()
    if isinstance(node, dict):
        resource = node.get("Resource")
        name = function_name_in(resource, node.get("Parameters")) if isinstance(resource, str) else None
        if node.get("Type") == "Task" and name:
            found.add(name)
        for value in node.values():
            found |= _task_functions(value)
    elif isinstance(node, list):
        for value in node:
            found |= _task_functions(value)
    return found


def _read_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{what} is not valid JSON: {exc}") from exc


def _execute(file: Path, raw_input: str, handlers_spec: str | None, name: str | None,
             state_machine: str | None, virtual_clock: bool):
    from asl_local.clock import VirtualClock
    from asl_local.invokers import InProcessInvoker
    from embedding_ingest.pipeline.engine_store import WorkflowEngine

    if not file.is_file():
        raise InvalidInputError(f"definition file {str(file)!r} does not exist")
    definition = _read_json(file.read_text(encoding="utf-8"), f"definition file {str(file)!r}")
    data = _read_json(raw_input, "--input")
    handlers = _load_handlers(handlers_spec)
    missing = sorted(_task_functions(definition) - set(handlers))
    if missing:
        raise InvalidInputError(f"{file.name}: no handler for Task function(s) {', '.join(missing)}; pass "
                                "--handlers module:mapping with a callable for each")
    machine = state_machine or re.sub(r"[^A-Za-z0-9_-]", "-", file.stem)[:80]
    workspace.creates_workspace()  # any state machine, receipts or not: its history needs a workspace
    engine = WorkflowEngine(workspace.ledger(), InProcessInvoker(handlers),
                            clock=VirtualClock(start=time.time()) if virtual_clock else None)
    return engine.start_execution(machine, definition, name or f"{machine}-{uuid.uuid4().hex[:8]}", data)


def run_definition(
        file: Path = typer.Argument(..., help="State machine definition (Amazon States Language, JSON)"),
        raw_input: str = typer.Option("{}", "--input", metavar="JSON", help="Execution input, a JSON text"),
        handlers: str = typer.Option(None, "--handlers", metavar="MODULE:NAME",
                                     help="module:mapping of Lambda function name -> Python callable"),
        name: str = typer.Option(None, "--name", help="Execution name (default: a fresh one)"),
        state_machine: str = typer.Option(None, "--state-machine", metavar="NAME",
                                          help="State machine name (default: the file's name)"),
        virtual_clock: bool = typer.Option(False, "--virtual-clock",
                                           help="Simulated time: Wait states and timeouts pass instantly, "
                                                "history timestamps advance as on AWS"),
        output: OutputFormat = OutputOption) -> None:
    """Run a definition to its end, print its output, keep its history (see get-execution-history)."""
    from embedding_ingest.pipeline.engine_store import describe_execution

    record = guarded(output, lambda: _execute(file, raw_input, handlers, name, state_machine, virtual_clock))
    described = describe_execution(record)
    if output is OutputFormat.JSON:
        emit_json(described)
    elif record.output is not None:
        sys.stdout.write(json.dumps(json.loads(record.output), indent=2, ensure_ascii=False) + "\n")
    stderr.print(f"execution [bold]{record.name}[/] {record.status.value}"
                 + (f": {record.error}: {record.cause}" if record.error else ""), highlight=False)
    hint(output, f"embedding-ingest get-execution-history {shlex.quote(record.name)}"
                 + ("" if record.status.value == "SUCCEEDED" else " --failed-only"))
    if record.status.value != "SUCCEEDED":
        raise typer.Exit(EXIT_EXECUTION_FAILED)


def register(app: typer.Typer) -> None:
    """Adds `run` to the `definitions` group (where `definitions render` lives)."""
    from embedding_ingest.cli.snapshot_commands import definitions_app

    definitions_app.command("run")(run_definition)
