"""Which tests are the ASL engine's own (asl_local's unit and functional tests and its conformance corpus).

They run once per session, in tests/asl_local_isolated's subprocess where embedding_ingest cannot be
imported; tests/conftest.py leaves them out of a session that also runs that subprocess."""

from __future__ import annotations

from pathlib import Path

# Relative to the repository root, as pytest's arguments and rootdir are.
ENGINE_TESTS = ("tests/unit/asl_local", "tests/functional/asl_local", "tests/conformance/test_corpus.py")
# The test that runs ENGINE_TESTS in the subprocess (a node id relative to the repository root).
ISOLATED_RUN = ("tests/asl_local_isolated/test_engine_without_the_product.py"
                "::test_the_engines_tests_pass_without_the_product")


def is_engine_test(path: Path, root: Path) -> bool:
    """True when the test file at `path` is one of ENGINE_TESTS (or inside one of its folders)."""
    relative = path.resolve().relative_to(root.resolve()).as_posix()
    return any(relative == entry or relative.startswith(entry + "/") for entry in ENGINE_TESTS)
