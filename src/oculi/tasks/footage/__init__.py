"""Footage intelligence: watch video, record tracks and events, answer questions, write reports.

- ``watch`` (``watch_source``): a video file or stream → tracks, events and keyframes in a
  collection (resumable, idempotent).
- ``query``: the typed query functions over stored events (the tool set a model can call).
- ``parse``/``ask``: a question in words → structured query → answer with evidence.
- ``report``: a day of a camera's events as a report (JSON, Markdown, HTML, PDF).
"""
