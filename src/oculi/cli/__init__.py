"""The ``oculi`` command: thin Typer commands that parse, call the engine, and render."""
