"""Kinds of class model."""
