"""Tasks: preprocess → run (the only step that touches a model, through a protocol) → postprocess."""
