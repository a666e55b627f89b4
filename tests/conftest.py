"""Shared by every test directory: moto's real-HTTP server fixtures (tests/support/moto_server.py) and
the check that every reply of the fake OpenAI follows OpenAI's schemas (tests/support/fake_openai.py;
tests/support is on pytest's pythonpath, see pyproject.toml); and the rule that the ASL engine's own tests
run once per session (pytest_collection_modifyitems below)."""

import importlib.util

import pytest
from engine_suite import ISOLATED_RUN, is_engine_test


def _product_importable() -> bool:
    """False in tests/asl_local_isolated's run, which blocks embedding_ingest (the fake OpenAI needs it)."""
    try:
        return importlib.util.find_spec("embedding_ingest") is not None
    except (ImportError, ValueError):
        return False


pytest_plugins = ["moto_server", "pytester", *(["fake_openai"] if _product_importable() else [])]


@pytest.hookimpl(trylast=True)  # after -k/-m: only when the isolated run is still selected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The engine's own tests (tests/support/engine_suite.py) run once per session, not twice: when
    tests/asl_local_isolated's test that runs them in a subprocess without the product is selected, they
    are deselected here. That run is the stricter one (the product unimportable: an import of it in the
    engine or a helper its tests use fails there); with the product importable they prove nothing more.
    Run on their own (e.g. `pytest tests/unit/asl_local`) they run here as usual."""
    if not _product_importable() or not any(item.nodeid == ISOLATED_RUN for item in items):
        return
    engine = [item for item in items if is_engine_test(item.path, config.rootpath)]
    if engine:
        config.hook.pytest_deselected(items=engine)
        items[:] = [item for item in items if not is_engine_test(item.path, config.rootpath)]
