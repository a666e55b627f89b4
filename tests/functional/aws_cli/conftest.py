from moto_server import moto_endpoint  # noqa: F401 - fixture
