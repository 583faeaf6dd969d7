"""``llmcli models verify REF``: judge a model file again, forgetting what was remembered.

The probe (:mod:`llmcli.engine.probe`) remembers its verdict per file so that a bad file
is refused at once next time; this is how a user clears that verdict and sees the file
checked again, in a child process (this process never imports llama_cpp).
"""

from __future__ import annotations

from llmcli.context import Environment


def verify_model(ref: str, env: Environment) -> None:
    from llmcli.engine import probe
    from llmcli.store.gguf import check_model_file
    from llmcli.store.resolve import resolve_model

    path = resolve_model(ref, env.environ).path
    check_model_file(path)
    forgotten = probe.forget(path)
    probe.ensure_loadable(path)
    note = " (an earlier verdict was forgotten)" if forgotten else ""
    env.stdout.write(f"ok: {path} loads and evaluates{note}\n")
    env.stdout.flush()
