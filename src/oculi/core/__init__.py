"""Core types and errors shared by every layer."""
