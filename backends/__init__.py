"""Recipes that start the real tracking services locally (see README.md here); used by the tests and benches."""
