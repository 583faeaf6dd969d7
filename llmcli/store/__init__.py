"""The model store: references, downloads, manifests and the GGUF header reader.

Nothing here imports llama.cpp: listing, showing and checking models must stay
fast and must work before (and without) the engine.
"""
