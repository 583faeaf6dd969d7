"""The fish completion script, generated from the command tree (see completion_gen)."""

from __future__ import annotations

from llmcli.cli.cmdtree import ArgumentSpec, CommandSpec, OptionSpec
from llmcli.cli.completion_words import HEADER

# ---- fish ------------------------------------------------------------------------------

_FISH_HELPERS = r"""
# The command path being completed ("" at the top level, "models show", ...).
function __llmcli_path
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l path
    set -l skip 0
    for token in $tokens
        if test $skip -eq 1
            set skip 0
            continue
        end
        set -l here (string join ' ' -- $path)
        switch $token
            case '--*=*'
                continue
            case '-*'
                if contains -- "$here|$token" $__llmcli_value_options
                    set skip 1
                end
                continue
        end
        if contains -- "$here|$token" $__llmcli_subcommands
            set -a path $token
        else
            break
        end
    end
    string join ' ' -- $path
end

function __llmcli_at
    set -l here (__llmcli_path)
    test "$here" = "$argv[1]"
end

function __llmcli_models
    set -l prog (commandline -opc)[1]
    command -q -- $prog; or set prog llmcli
    $prog completion models --describe 2>/dev/null
end

function __llmcli_prompts
    set -l prog (commandline -opc)[1]
    command -q -- $prog; or set prog llmcli
    $prog completion prompts 2>/dev/null
end
"""


def fish_script(tree: CommandSpec) -> str:
    commands = list(tree.walk())
    subs = [f"{c.name}|{s.path[-1]}" for c in commands for s in c.subcommands]
    values = [
        f"{c.name}|{name}" for c in commands for o in c.options if o.takes_value for name in o.names
    ]
    out = [
        f"# fish completion for llmcli. {HEADER}",
        "# Install: llmcli completion install fish, or copy to ~/.config/fish/completions/.",
        "",
        "set -g __llmcli_subcommands " + " ".join(_fish_quote(s) for s in subs),
        "set -g __llmcli_value_options " + " ".join(_fish_quote(v) for v in values),
        _FISH_HELPERS,
        "complete -c llmcli -f",
    ]
    for command in commands:
        condition = f"-n {_fish_quote('__llmcli_at ' + _fish_quote(command.name))}"
        for sub in command.subcommands:
            out.append(
                f"complete -c llmcli {condition} -a {_fish_quote(sub.path[-1])} "
                f"-d {_fish_quote(sub.help)}"
            )
        for option in command.options:
            out.append(f"complete -c llmcli {condition} {_fish_option(option)}")
        arg_values = "" if command.subcommands else _fish_argument(command.arguments)
        if arg_values:
            out.append(f"complete -c llmcli {condition} {arg_values}")
    return "\n".join(out) + "\n"


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_values(spec: OptionSpec | ArgumentSpec) -> str:
    if spec.value == "model":
        return "-F -a '(__llmcli_models)'"
    if spec.value == "prompt":
        return "-f -a '(__llmcli_prompts)'"
    if spec.value in ("file", "dir"):
        return "-F"
    if spec.value == "choice":
        return "-a " + _fish_quote(" ".join(spec.choices))
    return ""


def _fish_option(option: OptionSpec) -> str:
    parts = []
    for name in option.names:
        if name.startswith("--"):
            parts.append(f"-l {name[2:]}")
        elif len(name) == 2:
            parts.append(f"-s {name[1]}")
        else:
            parts.append(f"-o {name[1:]}")
    if option.takes_value:
        values = _fish_values(option)
        parts.append("-r" if "-F" in values else "-x")  # -x: no file names
        if values:
            parts.append(values)
    parts.append(f"-d {_fish_quote(option.help)}")
    return " ".join(parts)


def _fish_argument(arguments: tuple[ArgumentSpec, ...]) -> str:
    """Fish has no positional slots: offer the first argument's values that complete."""
    for argument in arguments:
        values = _fish_values(argument)
        if values:
            return values
    return ""
