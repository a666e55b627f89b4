"""Step Functions for the ingestion workflows: `builder` emits the line/word state machines (ASL) and
`engine.LocalEngine` runs them locally with AWS semantics; `invokers` call the step functions."""
