"""The local Step Functions engine: one small class per ASL construct (see compile.py for the subset)."""

from asl_local.arns import execution_arn, state_machine_arn
from asl_local.engine.compile import compile_definition
from asl_local.engine.runner import LocalEngine

__all__ = ["LocalEngine", "compile_definition", "execution_arn", "state_machine_arn"]
