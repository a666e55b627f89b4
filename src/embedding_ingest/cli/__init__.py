"""The `embedding-ingest` command line (Typer): `app` assembles the command groups (`*_commands`,
`demo`); `workspace` builds the settings and ports a command uses, once per invocation; `output`
prints tables, JSON and one-line errors; `entry` is the Typer app class."""
