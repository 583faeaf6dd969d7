"""The command line: the only package that imports typer.

Commands are thin: validate, call the library (store, engine, session), render.
"""
