"""The report pieces of each demo section: figures, tables and the HTML text around them.

``tools/demos/<name>.py`` trains and measures (``run(ctx)``); ``tools/demos/pages/<name>.py``
turns its results into the section's HTML and text. Shared page machinery (``Section``, tables,
figures, the page itself) is in ``tools/demos/_report.py``.
"""
