"""`python -m embedding_ingest.cli ...`: the same command line as the `embedding-ingest` script."""

from embedding_ingest.cli.app import app

app()
