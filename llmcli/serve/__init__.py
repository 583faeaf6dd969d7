"""The engine server: a per-user process that keeps models loaded between calls.

``llmcli serve`` runs it in the foreground; clients start it by themselves when
``keep_alive`` is not 0 (see :mod:`llmcli.engine.served`). It holds loaded models
(:mod:`.pool`, evicted least recently used by a RAM budget), answers over a Unix
socket (:mod:`.server`, frames from :mod:`llmcli.engine.wire`) and saves each
conversation's KV state to disk (:mod:`.states`) so a later process skips prefill.
"""
