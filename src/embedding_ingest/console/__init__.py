"""The web console (`embedding-ingest console`): a Starlette app serving a JSON API under /api/ and a
single-page UI (static/) that draws each execution's state machine with the vendored dagre layout."""
