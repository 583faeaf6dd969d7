#!/usr/bin/env python3
"""Write completions/llmcli.bash, completions/_llmcli and completions/llmcli.fish from the CLI.

Run it after adding or changing a command, option or argument:

    python scripts/gen_completions.py           # rewrite the files
    python scripts/gen_completions.py --check   # exit 1 if any file is stale (tests run this)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report stale files, write nothing")
    parser.add_argument("--dir", type=Path, default=ROOT / "completions", help="output folder")
    args = parser.parse_args(argv)

    from llmcli.cli.app import app
    from llmcli.cli.cmdtree import command_tree
    from llmcli.cli.completion_gen import FILE_NAMES, SHELLS, generate

    tree = command_tree(app)
    stale = []
    for shell in SHELLS:
        path = args.dir / FILE_NAMES[shell]
        text = generate(shell, tree)
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if args.check and stale:
        names = ", ".join(str(p) for p in stale)
        print(f"stale completion scripts: {names}", file=sys.stderr)
        print("regenerate them: python scripts/gen_completions.py", file=sys.stderr)
        return 1
    for path in stale:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
