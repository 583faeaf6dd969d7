"""Shell completions: the committed scripts are current, parse, and complete commands, options
and model names from a real store, in real bash, zsh and fish processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from llmcli.store.catalog import aliases_file, model_folder, set_alias
from llmcli.store.manifest import Manifest, ManifestFile, now_utc, write_manifest
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent
COMPLETIONS = ROOT / "completions"
SCRIPTS = {"bash": "llmcli.bash", "zsh": "_llmcli", "fish": "llmcli.fish"}
PULLED = "someone/Tiny-GGUF:Q8_0"


@pytest.fixture
def store() -> str:
    """One pulled model (written the way ``llmcli pull`` writes it) and an alias to it."""
    folder = model_folder("someone/Tiny-GGUF", "tiny-Q8_0", None)
    folder.mkdir(parents=True)
    (folder / "tiny-Q8_0.gguf").write_bytes(b"GGUF")
    manifest = Manifest(
        ref=PULLED,
        repo="someone/Tiny-GGUF",
        revision=None,
        commit="0" * 40,
        key="tiny-Q8_0",
        quant="Q8_0",
        files=(ManifestFile("tiny-Q8_0.gguf", "tiny-Q8_0.gguf", 4, None),),
        pulled_at=now_utc(),
        endpoint="https://huggingface.co",
    )
    write_manifest(folder, manifest)
    set_alias("tiny", PULLED)
    return PULLED


@pytest.fixture
def shell_env(tmp_path: Path) -> dict[str, str]:
    """PATH with an ``llmcli`` that runs this checkout, as the scripts call ``llmcli``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "llmcli"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m llmcli "$@"\n')
    wrapper.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env["HOME"] = str(tmp_path)
    return env


# ---- generated and current -----------------------------------------------------------------


def test_committed_scripts_match_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_completions.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_check_detects_a_stale_script(tmp_path: Path) -> None:
    for name in SCRIPTS.values():
        shutil.copy(COMPLETIONS / name, tmp_path / name)
    with open(tmp_path / "_llmcli", "a") as stale:
        stale.write("# edited by hand\n")
    gen = [sys.executable, str(ROOT / "scripts" / "gen_completions.py"), "--dir", str(tmp_path)]
    result = subprocess.run([*gen, "--check"], capture_output=True, text=True)
    assert result.returncode == 1 and "_llmcli" in result.stderr
    assert "llmcli.bash" not in result.stderr
    assert subprocess.run(gen, capture_output=True).returncode == 0
    assert (tmp_path / "_llmcli").read_text() == (COMPLETIONS / "_llmcli").read_text()


def test_install_print_gives_the_committed_script() -> None:
    for shell, name in SCRIPTS.items():
        result = run_cli("completion", "install", shell, "--print")
        assert result.returncode == 0, result.stderr
        assert result.stdout.decode() == (COMPLETIONS / name).read_text(), shell


@pytest.mark.parametrize(
    ("shell", "where"),
    [
        ("bash", ".local/share/bash-completion/completions/llmcli"),
        ("zsh", ".zfunc/_llmcli"),
        ("fish", ".config/fish/completions/llmcli.fish"),
    ],
)
def test_install_writes_to_the_shells_user_folder(shell: str, where: str, tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "XDG_DATA_HOME": "", "XDG_CONFIG_HOME": "", "ZDOTDIR": ""}
    result = run_cli("completion", "install", shell, env=env)
    assert result.returncode == 0, result.stderr
    target = tmp_path / where
    assert target.read_text() == (COMPLETIONS / SCRIPTS[shell]).read_text()
    assert str(target) in result.stdout.decode()


def test_install_picks_the_shell_from_shell_env(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "SHELL": "/usr/bin/fish", "XDG_CONFIG_HOME": ""}
    assert run_cli("completion", "install", env=env).returncode == 0
    assert (tmp_path / ".config/fish/completions/llmcli.fish").is_file()
    unknown = run_cli("completion", "install", env={"SHELL": "/bin/tcsh"})
    assert unknown.returncode == 2 and b"bash|zsh|fish" in unknown.stderr


# ---- the hidden model lister ---------------------------------------------------------------


def test_completion_models_lists_aliases_and_pulled_models(store: str) -> None:
    result = run_cli("completion", "models")
    assert result.returncode == 0
    assert result.stdout.decode().splitlines() == ["tiny", PULLED]
    described = run_cli("completion", "models", "--describe").stdout.decode().splitlines()
    assert described == [f"tiny\talias of {PULLED}", f"{PULLED}\tpulled, 4 B"]


def test_completion_models_is_silent_on_a_damaged_store(store: str) -> None:
    aliases_file().write_text("{")
    result = run_cli("completion", "models")
    assert result.returncode == 0 and result.stderr == b""


def test_completion_models_does_not_import_llama_cpp(store: str) -> None:
    code = (
        "import sys\n"
        "from llmcli.cli.app import run\n"
        "status = run(['completion', 'models'])\n"
        "assert status == 0, status\n"
        "heavy = sorted(m for m in ('llama_cpp', 'huggingface_hub') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout and PULLED in result.stdout


def test_entry_point_answers_completion_models_without_importing_the_cli(store: str) -> None:
    """The console script's fast path: names from the store, no Typer, Rich or llama.cpp."""
    code = (
        "import atexit, sys\n"
        "heavy = ('typer', 'rich', 'llama_cpp', 'huggingface_hub', 'llmcli.cli.app')\n"
        "atexit.register(lambda: print('LOADED', [m for m in heavy if m in sys.modules],"
        " file=sys.stderr))\n"
        "sys.argv = ['llmcli', 'completion', 'models', '--describe']\n"
        "from llmcli.cli.entry import main\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stderr
    assert result.stdout.splitlines() == [f"tiny\talias of {PULLED}", f"{PULLED}\tpulled, 4 B"]


def test_entry_point_hands_everything_else_to_the_cli() -> None:
    code = (
        "import sys; sys.argv = ['llmcli', '--version']; from llmcli.cli.entry import main; main()"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("llmcli ")


# ---- bash ----------------------------------------------------------------------------------

BASH_HARNESS = textwrap.dedent(
    r"""
    source "$1"
    spec=$(complete -p llmcli)
    fn=${spec##*-F }; fn=${fn%% *}
    complete_line() {
        COMP_LINE="$1"; COMP_POINT=${#COMP_LINE}
        read -r -a COMP_WORDS <<< "$COMP_LINE"
        [[ "$COMP_LINE" == *" " ]] && COMP_WORDS+=("")
        COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
        COMPREPLY=()
        "$fn" llmcli "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
        printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' '
        echo
    }
    shift
    for line in "$@"; do complete_line "$line"; done
    """
)


def bash_complete(env: dict[str, str], *lines: str) -> list[list[str]]:
    result = subprocess.run(
        [
            "bash",
            "--norc",
            "--noprofile",
            "-c",
            BASH_HARNESS,
            "bash",
            str(COMPLETIONS / SCRIPTS["bash"]),
            *lines,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return [line.split() for line in result.stdout.splitlines()]


def test_bash_script_parses() -> None:
    assert subprocess.run(["bash", "-n", str(COMPLETIONS / SCRIPTS["bash"])]).returncode == 0


def test_bash_completes_commands_options_and_model_names(
    store: str, shell_env: dict[str, str], model_path: Path
) -> None:
    top, models, model_opt, prefix, colon, option, choice, config_key, files = bash_complete(
        shell_env,
        "llmcli ",
        "llmcli mo",
        "llmcli ask -m ",
        "llmcli ask --model t",
        "llmcli ask -m someone/Tiny-GGUF:Q",
        "llmcli ask --temperature 0.5 --gre",
        "llmcli ask --chat-format ll",
        "llmcli config set top_",
        f"llmcli ask --chat-template {model_path.parent}/SmolLM2",
    )
    assert {"ask", "config", "doctor", "completion", "models"} <= set(top)
    assert "--help" not in top
    assert models == ["models"]
    assert model_opt == sorted(["tiny", PULLED])
    assert prefix == ["tiny"]
    assert colon == ["Q8_0"]  # bash replaces only the part after ':'
    assert option == ["--greedy"]
    assert choice == ["llama-2", "llama-3"]
    assert config_key == ["top_k", "top_p"]
    assert str(model_path) in files


def test_bash_counts_positionals_and_completes_options_after_a_value(
    store: str, shell_env: dict[str, str]
) -> None:
    first, second, after_option = bash_complete(
        shell_env,
        "llmcli config set ",
        "llmcli config set temperature ",
        "llmcli config show -m tiny --",
    )
    assert "temperature" in first
    assert second == []  # the VALUE argument: free text
    assert after_option == ["--help", "--json", "--model"]


# ---- zsh and fish --------------------------------------------------------------------------


def _needs(shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed (CI installs it: apt-get install -y {shell})")


def test_zsh_script_parses() -> None:
    _needs("zsh")
    assert subprocess.run(["zsh", "-n", str(COMPLETIONS / SCRIPTS["zsh"])]).returncode == 0


def test_fish_script_parses() -> None:
    _needs("fish")
    assert subprocess.run(["fish", "-n", str(COMPLETIONS / SCRIPTS["fish"])]).returncode == 0


def fish_complete(env: dict[str, str], line: str) -> list[str]:
    script = f"source {COMPLETIONS / SCRIPTS['fish']}; complete -C {_fish_quote(line)}"
    result = subprocess.run(
        ["fish", "--no-config", "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return sorted(entry.split("\t")[0] for entry in result.stdout.splitlines())


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def test_fish_completes_commands_options_and_model_names(
    store: str, shell_env: dict[str, str]
) -> None:
    _needs("fish")
    assert {"ask", "config", "doctor", "models"} <= set(fish_complete(shell_env, "llmcli "))
    assert fish_complete(shell_env, "llmcli config s") == ["set", "show"]
    assert {"tiny", PULLED} <= set(fish_complete(shell_env, "llmcli ask -m "))
    assert fish_complete(shell_env, "llmcli ask --gre") == ["--greedy"]
    assert fish_complete(shell_env, "llmcli ask --chat-format ch") == ["chatml"]
    assert fish_complete(shell_env, "llmcli ask --ctx ") == []  # a number: no file names


ZSH_HARNESS = textwrap.dedent(
    r"""
    # zsh -f harness FPATH_DIR OUT LINE: type LINE and Tab in an interactive zsh on a pty,
    # recording every candidate the completion system adds.
    zmodload zsh/zpty
    zpty z zsh -f -i
    zpty -w z "PROMPT='> '; fpath=($1 \$fpath); autoload -Uz compinit; compinit -u -D"
    zpty -w z "compadd() { local -a h; builtin compadd -O h \"\$@\"; \
        print -rl -- \$h >> $2; builtin compadd \"\$@\"; }"
    zpty -w z "print ready > $2.ready"
    for i in {1..300}; do [[ -e $2.ready ]] && break; sleep 0.1; zpty -r -t z _ 2>/dev/null; done
    zpty -w -n z "$3"$'\t'
    for i in {1..300}; do [[ -s $2 ]] && break; sleep 0.1; zpty -r -t z _ 2>/dev/null; done
    sleep 0.5
    zpty -d z
    """
)


def zsh_complete(env: dict[str, str], line: str, tmp_path: Path) -> list[str]:
    fpath = tmp_path / "zfunc"
    fpath.mkdir(exist_ok=True)
    shutil.copy(COMPLETIONS / SCRIPTS["zsh"], fpath / "_llmcli")
    out = tmp_path / f"zsh-{abs(hash(line))}.out"
    subprocess.run(
        ["zsh", "-f", "-c", ZSH_HARNESS, "zsh", str(fpath), str(out), line],
        env=env,
        timeout=120,
        capture_output=True,
    )
    return sorted(set(out.read_text().split())) if out.exists() else []


@pytest.mark.slow
def test_zsh_completes_commands_and_model_names(
    store: str, shell_env: dict[str, str], tmp_path: Path
) -> None:
    _needs("zsh")
    assert {"ask", "config", "doctor", "models"} <= set(
        zsh_complete(shell_env, "llmcli ", tmp_path)
    )
    assert {"tiny", PULLED} <= set(zsh_complete(shell_env, "llmcli ask -m ", tmp_path))
    assert zsh_complete(shell_env, "llmcli config set top_", tmp_path) == ["top_k", "top_p"]


def test_bash_completes_saved_prompt_names(shell_env: dict[str, str]) -> None:
    from llmcli.store.prompts import SavedPrompt, save_prompt

    save_prompt(SavedPrompt(name="commit", prompt="{input}"))
    save_prompt(SavedPrompt(name="person", prompt="Who is $1?"))
    ask_p, show, entry = bash_complete(
        shell_env, "llmcli ask -p ", "llmcli prompts show c", "llmcli prompts "
    )
    assert ask_p == ["commit", "person"]
    assert show == ["commit"]
    assert {"save", "list", "show", "rm", "edit"} <= set(entry)
    fast = subprocess.run(
        [sys.executable, "-c", "import sys; sys.argv[1:] = ['completion', 'prompts'];"
         "from llmcli.cli.entry import main; main()"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert fast.stdout == "commit\nperson\n"
