"""`embedding-ingest console`: serve the web console (graph view of executions, history, batches,
snapshots, query) over the workspace, or over the deployed state machines with --backend aws."""

from __future__ import annotations

import ipaddress
import secrets
import socket
import threading
import webbrowser

import typer

from embedding_ingest.cli import workspace
from embedding_ingest.cli.entry import Panel
from embedding_ingest.cli.errors import CliError
from embedding_ingest.cli.output import OutputFormat, fail, guarded, stderr
from embedding_ingest.cli.run_commands import Backend, BackendOption

DEFAULT_PORT = 8470


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            raise fail(CliError(f"cannot listen on {host}:{port} ({exc.strerror})",
                                try_=f"embedding-ingest console --port {port + 1}"),
                       OutputFormat.TABLE) from None


def build_console(backend: Backend, *, allow_actions: bool, token: str | None):
    """The Console over this workspace's ports (and the Step Functions API for --backend aws)."""
    from embedding_ingest import backends
    from embedding_ingest.console.api import Console
    from embedding_ingest.console.sources import LocalSource, StepFunctionsSource

    settings = workspace.settings()
    if backend is Backend.AWS:
        from embedding_ingest.aws.stepfunctions import StepFunctionsBackend

        source = StepFunctionsSource(StepFunctionsBackend(backends.aws_client("stepfunctions", settings)))
    else:
        source = LocalSource(workspace.ledger())
    return Console(source=source, ledger=workspace.ledger(), objects=workspace.objects(), settings=settings,
                   allow_actions=allow_actions, token=token)


def console(host: str = typer.Option("127.0.0.1", "--host",
                                     help="Address to listen on (default: this machine only)"),
            port: int = typer.Option(DEFAULT_PORT, "--port", min=1, max=65535, metavar="PORT",
                                     help="Port to listen on"),
            open_browser: bool = typer.Option(False, "--open", help="Open the console in a browser"),
            backend: Backend = BackendOption,
            allow_actions: bool = typer.Option(
                False, "--allow-actions",
                help="Allow starting executions, resetting batches and rolling back (local backend only; "
                     "each request needs the token printed at start-up)")) -> None:
    """Serve the execution console in the browser: graph view, history, batches, snapshots, query.

    Read-only unless --allow-actions. Stop it with Ctrl-C."""
    import uvicorn

    from embedding_ingest.console.app import LOOPBACK_HOSTS, create_app

    if allow_actions and backend is Backend.AWS:
        raise fail(CliError("--allow-actions works on the local backend only (with --backend aws the "
                            "console is read-only)", try_="embedding-ingest console --backend aws"),
                   OutputFormat.TABLE)
    _check_port_free(host, port)
    if backend is Backend.LOCAL:  # a console over nothing would create an empty workspace: refuse
        guarded(OutputFormat.TABLE, workspace.require_workspace)
    token = secrets.token_urlsafe(24) if allow_actions else None
    # Beyond loopback, others reach the console by this machine's name (IP addresses are always served).
    allowed = LOOPBACK_HOSTS if _is_loopback(host) else \
        (*LOOPBACK_HOSTS, host.strip("[]"), socket.gethostname(), socket.getfqdn())
    if not _is_loopback(host):
        stderr.print(f"[yellow]warning:[/] listening on {host}: anyone who can reach this machine can read "
                     "the workspace through the console")
    served = guarded(OutputFormat.TABLE,
                     lambda: build_console(backend, allow_actions=allow_actions, token=token))
    app = create_app(served, allowed_hosts=allowed)
    url = f"http://{'[' + host + ']' if ':' in host and not host.startswith('[') else host}:{port}/"
    stderr.print(f"Console on {url} ({backend.value} backend, "
                 f"{'actions allowed' if allow_actions else 'read-only'}); Ctrl-C stops it", soft_wrap=True)
    if token:
        stderr.print("Action token (paste it into the page; sent as the X-Console-Token header):",
                     soft_wrap=True)
        stderr.print(f"  {token}", soft_wrap=True, highlight=False)
    if open_browser:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    try:
        uvicorn.run(app, host=host.strip("[]"), port=port, log_level="warning")
    finally:
        served.close()


def register(app: typer.Typer) -> None:
    app.command("console", rich_help_panel=Panel.MONITOR,
                short_help="The web console: graph, dashboard, batches.")(console)
