"""The local Step Functions engine: one small class per ASL construct (see compile.py for the subset)."""

from embedding_ingest.workflow.engine.compile import compile_definition
from embedding_ingest.workflow.engine.local_engine import LocalEngine, execution_arn, state_machine_arn

__all__ = ["LocalEngine", "compile_definition", "execution_arn", "state_machine_arn"]
