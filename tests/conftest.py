"""Shared by every test directory: moto's real-HTTP server fixtures (tests/support/moto_server.py;
tests/support is on pytest's pythonpath, see pyproject.toml)."""

pytest_plugins = ["moto_server"]
