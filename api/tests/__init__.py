"""Tests of the house-prices API."""
