"""Deployment recipes (deploy/README.md) and their tests; a package so that
pytest puts the repository root on sys.path and the tests can import api."""
