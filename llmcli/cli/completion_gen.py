"""Shell completion scripts (bash, zsh, fish) generated from the command tree.

The scripts are static tables of commands and options plus two dynamic parts: model
names, which they get by running ``llmcli completion models`` (a hidden command that
reads the local store without importing llama.cpp), and saved prompt names
(``llmcli completion prompts``). ``scripts/gen_completions.py``
writes them to ``completions/``; ``llmcli completion install`` writes the same text
to the shell's user completion folder.
"""

from __future__ import annotations

from collections.abc import Callable

from llmcli.cli.cmdtree import ArgumentSpec, CommandSpec, OptionSpec
from llmcli.cli.completion_fish import fish_script
from llmcli.cli.completion_words import HEADER

SHELLS = ("bash", "zsh", "fish")
FILE_NAMES = {"bash": "llmcli.bash", "zsh": "_llmcli", "fish": "llmcli.fish"}


def generate(shell: str, tree: CommandSpec) -> str:
    generators: dict[str, Callable[[CommandSpec], str]] = {
        "bash": bash_script,
        "zsh": zsh_script,
        "fish": fish_script,
    }
    return generators[shell](tree)


def _value_word(spec: OptionSpec | ArgumentSpec) -> str:
    """``model``, ``file``, ``dir``, ``choice a b c`` or ``text``: what completes a value."""
    if spec.value == "choice":
        return "choice " + " ".join(spec.choices)
    return spec.value


# ---- bash ------------------------------------------------------------------------------

_BASH_MAIN = r"""
_llmcli_models() {
    local prog="$1"
    command -v -- "$prog" >/dev/null 2>&1 || prog=llmcli
    "$prog" completion models 2>/dev/null
}

_llmcli_prompts() {
    local prog="$1"
    command -v -- "$prog" >/dev/null 2>&1 || prog=llmcli
    "$prog" completion prompts 2>/dev/null
}

# Fill COMPREPLY with the values of KIND (model, prompt, file, dir, "choice WORDS", text) that
# start with CUR.
_llmcli_values() {
    local kind="$1" cur="$2" prog="$3" IFS=$'\n'
    COMPREPLY=()
    case "$kind" in
        model)
            COMPREPLY=($(compgen -W "$(_llmcli_models "$prog")" -- "$cur"))
            if [[ ${#COMPREPLY[@]} -eq 0 ]]; then
                COMPREPLY=($(compgen -f -- "$cur"))
                type compopt >/dev/null 2>&1 && compopt -o filenames 2>/dev/null
            fi
            ;;
        prompt)
            COMPREPLY=($(compgen -W "$(_llmcli_prompts "$prog")" -- "$cur"))
            ;;
        file)
            COMPREPLY=($(compgen -f -- "$cur"))
            type compopt >/dev/null 2>&1 && compopt -o filenames 2>/dev/null
            ;;
        dir)
            COMPREPLY=($(compgen -d -- "$cur"))
            type compopt >/dev/null 2>&1 && compopt -o filenames 2>/dev/null
            ;;
        choice\ *)
            IFS=$' \t\n'
            COMPREPLY=($(compgen -W "${kind#choice }" -- "$cur"))
            ;;
    esac
    # Bash splits words at ':' (OWNER/REPO:QUANT): offer only what follows the last one.
    if [[ "$cur" == *:* && "$COMP_WORDBREAKS" == *:* ]]; then
        local prefix="${cur%"${cur##*:}"}" i
        for i in "${!COMPREPLY[@]}"; do
            COMPREPLY[i]="${COMPREPLY[i]#"$prefix"}"
        done
    fi
}

_llmcli() {
    local line="${COMP_LINE:0:COMP_POINT}"
    [[ -n "$line" ]] || line="${COMP_WORDS[*]:0:COMP_CWORD+1}"
    local -a words
    read -r -a words <<< "$line"
    local cur=""
    if [[ ${#words[@]} -gt 0 && "$line" != *[[:space:]] ]]; then
        cur="${words[${#words[@]}-1]}"
        unset "words[${#words[@]}-1]"
    fi
    local prog="${words[0]:-llmcli}" path="" kind="" pos=0 i w subs
    for ((i = 1; i < ${#words[@]}; i++)); do
        w="${words[i]}"
        if [[ -n "$kind" ]]; then
            kind=""
            continue
        fi
        case "$w" in
            --*=*) continue ;;
            -*) kind="$(_llmcli_option_value "$path" "$w")"; continue ;;
        esac
        subs=" $(_llmcli_subcommands "$path") "
        if [[ $pos -eq 0 && "$subs" == *" $w "* ]]; then
            path="${path:+$path }$w"
        else
            pos=$((pos + 1))
        fi
    done
    if [[ -n "$kind" ]]; then
        _llmcli_values "$kind" "$cur" "$prog"
    elif [[ "$cur" == --*=* ]]; then
        _llmcli_values "$(_llmcli_option_value "$path" "${cur%%=*}")" "${cur#*=}" "$prog"
    elif [[ "$cur" == -* ]]; then
        _llmcli_values "choice $(_llmcli_options "$path")" "$cur" "$prog"
    elif [[ $pos -eq 0 && -n "$(_llmcli_subcommands "$path")" ]]; then
        _llmcli_values "choice $(_llmcli_subcommands "$path")" "$cur" "$prog"
    else
        _llmcli_values "$(_llmcli_argument "$path" "$pos")" "$cur" "$prog"
    fi
}

complete -F _llmcli llmcli
"""


def bash_script(tree: CommandSpec) -> str:
    commands = list(tree.walk())
    out = [
        "# bash completion for llmcli                                 -*- shell-script -*-",
        f"# {HEADER}",
        "# Install: llmcli completion install bash, or source this file from ~/.bashrc.",
        "",
        "# The subcommands of a command path ('' is the top level).",
        "_llmcli_subcommands() {",
        '    case "$1" in',
    ]
    for command in commands:
        if command.subcommands:
            names = " ".join(sub.path[-1] for sub in command.subcommands)
            out.append(f'        "{command.name}") echo "{names}" ;;')
    out += ["    esac", "}", "", "# The options of a command path.", "_llmcli_options() {"]
    out.append('    case "$1" in')
    for command in commands:
        names = " ".join(name for option in command.options for name in option.names)
        out.append(f'        "{command.name}") echo "{names}" ;;')
    out += [
        "    esac",
        "}",
        "",
        "# What completes the value of option $2 of command path $1 (nothing: a flag).",
        "_llmcli_option_value() {",
        '    case "$1|$2" in',
    ]
    for command in commands:
        for option in command.options:
            if option.takes_value:
                patterns = "|".join(f'"{command.name}|{name}"' for name in option.names)
                out.append(f'        {patterns}) echo "{_value_word(option)}" ;;')
    out += [
        "    esac",
        "}",
        "",
        "# What completes positional argument number $2 (from 0) of command path $1.",
        "_llmcli_argument() {",
        '    case "$1|$2" in',
    ]
    for command in commands:
        for index, argument in enumerate(command.arguments):
            pattern = f'"{command.name}|"*' if argument.variadic else f'"{command.name}|{index}"'
            out.append(f'        {pattern}) echo "{_value_word(argument)}" ;;')
    out += ["    esac", "}"]
    return "\n".join(out) + "\n" + _BASH_MAIN


# ---- zsh -------------------------------------------------------------------------------

_ZSH_HELPERS = r"""
_llmcli_model() {
    local prog=${_llmcli_prog:-llmcli}
    (( $+commands[$prog] )) || [[ -x $prog ]] || prog=llmcli
    local -a names
    names=(${(f)"$($prog completion models 2>/dev/null)"})
    _alternative \
        'models:model:compadd -a names' \
        'files:model file:_files -g "*.gguf(-.)"'
}

_llmcli_prompt() {
    local prog=${_llmcli_prog:-llmcli}
    (( $+commands[$prog] )) || [[ -x $prog ]] || prog=llmcli
    local -a names
    names=(${(f)"$($prog completion prompts 2>/dev/null)"})
    compadd -a names
}
"""


def zsh_script(tree: CommandSpec) -> str:
    out = [
        "#compdef llmcli",
        f"# {HEADER}",
        "# Install: llmcli completion install zsh, or put this file in a folder on $fpath.",
        _ZSH_HELPERS,
    ]
    for command in tree.walk():
        out += _zsh_function(command)
    out += [
        "_llmcli() {",
        "    typeset -g _llmcli_prog=${words[1]}",
        "    _llmcli__root",
        "}",
        "",
        'if [[ "$funcstack[1]" == _llmcli ]]; then',
        '    _llmcli "$@"',
        "else",
        "    compdef _llmcli llmcli",
        "fi",
    ]
    return "\n".join(out) + "\n"


def _zsh_name(command: CommandSpec) -> str:
    suffix = "__".join(part.replace("-", "_") for part in command.path) or "root"
    return f"_llmcli__{suffix}"


def _zsh_function(command: CommandSpec) -> list[str]:
    specs = [_zsh_option(option) for option in command.options]
    if command.subcommands:
        specs += ["'1:command:->command'", "'*::arg:->args'"]
    else:
        specs += [_zsh_argument(argument) for argument in command.arguments]
    lines = [f"{_zsh_name(command)}() {{"]
    if command.subcommands:
        lines.append('    local curcontext="$curcontext" state line')
        lines.append("    _arguments -C -s -S \\")
    else:
        lines.append("    _arguments -s -S \\")
    lines += [f"        {spec} \\" for spec in specs[:-1]]
    lines.append(f"        {specs[-1]}" if specs else "        ''")
    if command.subcommands:
        lines += ["    case $state in", "        command)", "            local -a commands"]
        lines.append("            commands=(")
        for sub in command.subcommands:
            lines.append(f"                {_zsh_quote(sub.path[-1] + ':' + sub.help)}")
        lines.append("            )")
        title = _zsh_quote(" ".join(("llmcli", *command.path, "command")))
        lines.append(f"            _describe -t commands {title} commands")
        lines += ["            ;;", "        args)", "            case $line[1] in"]
        for sub in command.subcommands:
            lines.append(f"                {sub.path[-1]}) {_zsh_name(sub)} ;;")
        lines += ["            esac", "            ;;", "    esac"]
    lines += ["}", ""]
    return lines


def _zsh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _zsh_description(text: str) -> str:
    return text.replace("\\", "\\\\").replace("[", "(").replace("]", ")")


def _zsh_action(spec: OptionSpec | ArgumentSpec) -> str:
    if spec.value == "model":
        return "_llmcli_model"
    if spec.value == "prompt":
        return "_llmcli_prompt"
    if spec.value == "file":
        return "_files"
    if spec.value == "dir":
        return "_files -/"
    if spec.value == "choice":
        return "(" + " ".join(spec.choices) + ")"
    return " "


def _zsh_option(option: OptionSpec) -> str:
    text = f"[{_zsh_description(option.help)}]"
    if option.takes_value:
        message = option.metavar.lower().replace(":", " ") or "value"
        text += f":{message}:{_zsh_action(option)}"
    star = "*" if option.repeatable else ""
    if len(option.names) == 1:
        return _zsh_quote(star + option.names[0] + text)
    exclusion = "" if star else "(" + " ".join(option.names) + ")"
    return _zsh_quote(star + exclusion) + "{" + ",".join(option.names) + "}" + _zsh_quote(text)


def _zsh_argument(argument: ArgumentSpec) -> str:
    prefix = "*" if argument.variadic else ("" if argument.required else ":")
    message = argument.name.replace("_", " ")
    return _zsh_quote(f"{prefix}:{message}:{_zsh_action(argument)}")
