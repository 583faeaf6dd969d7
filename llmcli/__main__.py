"""``python -m llmcli``."""

import sys

if __name__ == "__main__":
    try:
        from llmcli.cli.app import main
    except KeyboardInterrupt:  # Ctrl-C while still importing: as quiet as later on
        sys.exit(130)
    main()
