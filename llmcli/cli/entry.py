"""The console-script entry point, with a fast path for shell completion.

Pressing Tab runs ``llmcli completion models``; importing the whole CLI (Typer, Rich,
every command module) costs most of a second, while listing model names needs only
the store's manifests and aliases (~0.2 s in all). So that one command is answered
here, before anything heavy is imported; everything else goes to
:func:`llmcli.cli.app.main`.
"""

from __future__ import annotations

import sys
from typing import NoReturn

COMPLETION_MODELS = ["completion", "models"]
COMPLETION_PROMPTS = ["completion", "prompts"]


def main() -> NoReturn:
    argv = sys.argv[1:]
    try:
        from llmcli.service.model_names import print_model_names, print_prompt_names

        if argv[:2] == COMPLETION_MODELS and set(argv[2:]) <= {"--describe"}:
            print_model_names(sys.stdout, describe=bool(argv[2:]))
            sys.exit(0)
        if argv == COMPLETION_PROMPTS:
            print_prompt_names(sys.stdout)
            sys.exit(0)
        from llmcli.cli.app import main as full_main
    except KeyboardInterrupt:  # Ctrl-C while still importing: as quiet as later on
        sys.exit(130)
    full_main()
