"""The library under the commands: what ``ask``, ``chat`` and the REPL do, without a terminal.

``engines``/``remotes`` choose and load the engine; ``sampling`` layers flags over
settings; ``turn`` streams one answer (sink, cancel, save on interrupt, stats);
``continued`` is ``ask -c``'s one more turn in the last conversation; ``each``
answers ``ask --each-line/--each-file``'s many items at once, in input order. Nothing here
imports typer or draws on a terminal: commands validate, call this, and render.
"""
