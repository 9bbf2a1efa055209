"""The house-prices prediction service: a FastAPI app over ``regression_model``.

Start it with ``python -m api`` (see ``api/README.md``); build the app
itself with :func:`api.app.main.create_app`.
"""

#: Version of the HTTP API (the model's version is ``regression_model.__version__``).
__version__ = "1.0.0"

__all__ = ["__version__"]
