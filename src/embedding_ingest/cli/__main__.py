"""`python -m embedding_ingest.cli ...`: the same command line as the `embedding-ingest` script."""

from embedding_ingest.cli.launch import main

main()
