"""Studies: one config trained several times with one setting varied (``lit batch-sizes``, ``lit depths``), each
run in its own sub-folder of the study's run folder, and one table comparing them."""
