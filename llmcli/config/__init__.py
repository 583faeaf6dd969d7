"""Effective settings: built-in defaults < config file < environment (< command-line flags).

The config file is TOML at :func:`llmcli.paths.config_file` (``LLMCLI_CONFIG`` names
another one). Top-level keys are the defaults; ``[models.NAME]`` tables override
sampling and hardware settings for one model, NAME being what the user passes to
``-m`` (an alias, ``OWNER/REPO``, ``OWNER/REPO:QUANT``, or a file name)::

    model = "qwen"
    temperature = 0.7

    [models.qwen]
    system = "Answer in one sentence."
    temperature = 0.2

Precedence, highest first: a command-line flag (applied by the CLI, which treats an
unset flag as ``None``), an ``LLMCLI_*`` environment variable, the file's
``[models.NAME]`` table, the file's top level, the built-in default. Every value
remembers where it came from (``Settings.sources``) so ``llmcli config show`` can
say why a value is what it is.

A file that is not valid TOML, or holds an unknown key or a value of the wrong
type, raises :class:`ConfigError` (a :class:`~llmcli.errors.DataError`, exit 65)
naming the line and column; only commands that need settings read the file, so
``--help``, ``config path``, ``config edit`` and ``models list`` keep working.

The package is split by job: :mod:`~llmcli.config.schema` (keys and checks),
:mod:`~llmcli.config.load` (reading and layering), :mod:`~llmcli.config.edit`
(``config set``/``unset``); this module re-exports their public names.
"""

from llmcli.atomic import write_atomic  # noqa: F401 (re-exported)
from llmcli.config.edit import *  # noqa: F403
from llmcli.config.load import *  # noqa: F403
from llmcli.config.schema import *  # noqa: F403
from llmcli.config.schema import ENV_PREFIX as ENV_PREFIX
