"""Shared by every test directory: moto's real-HTTP server fixtures (tests/support/moto_server.py) and
the check that every reply of the fake OpenAI follows OpenAI's schemas (tests/support/fake_openai.py;
tests/support is on pytest's pythonpath, see pyproject.toml)."""

import importlib.util


def _product_importable() -> bool:
    """False in tests/asl_local_isolated's run, which blocks embedding_ingest (the fake OpenAI needs it)."""
    try:
        return importlib.util.find_spec("embedding_ingest") is not None
    except (ImportError, ValueError):
        return False


pytest_plugins = ["moto_server", "pytester", *(["fake_openai"] if _product_importable() else [])]
