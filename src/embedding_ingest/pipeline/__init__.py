"""Running the ingestion workflows: `definitions` builds the line/word state machines (ASL) from
`state_names` and the retry/catch `policies`; `run` is the run loop (one execution on the local engine,
or executions until no batch of a kind is active); `schedule` repeats submit + run; `report` turns an
execution's history into its summary."""
