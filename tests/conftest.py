"""Shared by every test directory: moto's real-HTTP server fixtures (tests/support/moto_server.py) and
the check that every reply of the fake OpenAI follows OpenAI's schemas (tests/support/fake_openai.py;
tests/support is on pytest's pythonpath, see pyproject.toml)."""

pytest_plugins = ["moto_server", "fake_openai", "pytester"]
