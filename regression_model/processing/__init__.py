"""Data handling: loading, input validation and custom feature transformers."""
