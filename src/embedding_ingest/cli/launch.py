"""The `embedding-ingest` script's entry point: Ctrl-C is handled from the first line, before the
command line's modules are imported (about 0.7 s in which a KeyboardInterrupt would otherwise print a
traceback from deep inside an import)."""

from __future__ import annotations


def main() -> None:
    """Install the Ctrl-C handler, then import and run the app."""
    from embedding_ingest.cli import interrupts

    interrupts.install()
    try:
        from embedding_ingest.cli.app import app
    except interrupts.Interrupted:
        import sys

        sys.stderr.write("\nstopped by Ctrl-C while starting (nothing was done)\n")
        sys.exit(130)
    app()
