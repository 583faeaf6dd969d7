"""Configuration: precedence (flag > env > [models.NAME] > file > default), the TOML file,
``llmcli config path|show|set|unset|edit``, and what a broken file does to other commands."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcli import paths
from llmcli.cli.loading import ModelFlags, SamplingFlags, build_sampling, load_options, resolve
from llmcli.config import (
    KEYS,
    ConfigError,
    format_key,
    format_value,
    load_settings,
    parse_key_path,
    set_config_value,
    settings_for_model,
    tomllib,
    unset_config_value,
)
from llmcli.context import Environment
from llmcli.errors import UsageError
from tests.conftest import run_cli


def config_file() -> Path:
    path = paths.config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_config(text: str) -> Path:
    path = config_file()
    path.write_text(text, encoding="utf-8")
    return path


def show_json(env: dict[str, str] | None = None, *args: str) -> dict[str, Any]:
    result = run_cli("config", "show", "--json", *args, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# ---- precedence: each layer, for model, temperature, ctx and gpu_layers --------------------

# key: (file value as TOML, env value, flag value, (default, from file, from env, from flag))
LAYERS: dict[str, tuple[str, str, Any, tuple[Any, Any, Any, Any]]] = {
    "temperature": ("0.3", "0.6", 1.2, (0.8, 0.3, 0.6, 1.2)),
    "ctx": ("1024", "2048", 512, (None, 1024, 2048, 512)),
    "gpu_layers": ('"all"', "7", "3", ("auto", "all", 7, 3)),
    "model": ('"file.gguf"', "env.gguf", "flag.gguf", (None, "file.gguf", "env.gguf", "flag.gguf")),
}


def effective(key: str, settings: Any, flag: Any) -> Any:
    """The value a command ends up using, through the CLI's own flag-merging functions."""
    if key == "temperature":
        return build_sampling(SamplingFlags(temperature=flag), settings).temperature
    if key == "ctx":
        return load_options(ModelFlags(ctx=flag), settings).n_ctx
    if key == "gpu_layers":
        return load_options(ModelFlags(gpu_layers=flag), settings).gpu_layers
    return flag or settings.model


@pytest.mark.parametrize("key", sorted(LAYERS))
def test_each_layer_overrides_the_one_below(key: str) -> None:
    file_value, env_value, flag, (default, from_file, from_env, from_flag) = LAYERS[key]
    env_var = KEYS[key].env_var
    assert effective(key, load_settings({}), None) == default
    write_config(f"{key} = {file_value}\n")
    file_settings = load_settings({})
    env_settings = load_settings({env_var: env_value})
    assert file_settings.source(key) == "file"
    assert env_settings.source(key) == f"env {env_var}"
    assert effective(key, file_settings, None) == from_file
    assert effective(key, env_settings, None) == from_env
    assert effective(key, env_settings, flag) == from_flag


def test_config_show_reports_value_and_source_of_every_layer() -> None:
    write_config('temperature = 0.3\nctx = 1024\ngpu_layers = "all"\nmodel = "m.gguf"\n')
    data = show_json({"LLMCLI_CTX": "2048", "LLMCLI_GPU_LAYERS": "5"})
    got = {k: (v["value"], v["source"]) for k, v in data["settings"].items()}
    assert got["temperature"] == (0.3, "file")
    assert got["ctx"] == (2048, "env LLMCLI_CTX")
    assert got["gpu_layers"] == ("5", "env LLMCLI_GPU_LAYERS")
    assert got["model"] == ("m.gguf", "file")
    assert got["top_p"] == (0.95, "default")
    assert data["config_file"] == str(paths.config_file())


def _model_copy(model_path: Path, folder: Path, name: str) -> Path:
    link = folder / f"{name}.gguf"
    link.symlink_to(model_path)
    return link


@pytest.mark.slow
def test_model_precedence_end_to_end(model_path: Path, tmp_path: Path) -> None:
    """The model that actually answers: flag > LLMCLI_MODEL > file > the bundled default."""
    flag, env, file = (_model_copy(model_path, tmp_path, n) for n in ("flag", "env", "file"))

    def answered_by(*args: str, env: dict[str, str] | None = None) -> str:
        result = run_cli("ask", "--json", "--max-tokens", "1", *args, "Hi", env=env)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["model"]

    assert answered_by() == model_path.name.removesuffix(".gguf")
    write_config(f"model = {format_value(str(file))}\n")
    assert answered_by() == "file"
    assert answered_by(env={"LLMCLI_MODEL": str(env)}) == "env"
    assert answered_by("-m", str(flag), env={"LLMCLI_MODEL": str(env)}) == "flag"


def test_model_resolution_uses_the_merged_settings(tmp_path: Path, model_path: Path) -> None:
    file_model = _model_copy(model_path, tmp_path, "file")
    write_config(f"model = {format_value(str(file_model))}\n")
    settings = load_settings({})
    assert resolve(ModelFlags(), settings, Environment(environ={})).path == file_model


# ---- per-model tables ----------------------------------------------------------------------


def test_model_table_sits_between_env_and_top_level() -> None:
    write_config(
        "temperature = 0.5\nctx = 1024\n\n"
        '[models.qwen]\ntemperature = 0.2\nctx = 4096\nsystem = "Be brief."\n'
    )
    base = load_settings({"LLMCLI_CTX": "2048"})
    tuned = settings_for_model(base, "qwen")
    assert tuned.temperature == 0.2 and tuned.source("temperature") == "file [models.qwen]"
    assert tuned.ctx == 2048 and tuned.source("ctx") == "env LLMCLI_CTX"
    assert tuned.system == "Be brief."
    assert tuned.model_table == "qwen"
    assert settings_for_model(base, "other").temperature == 0.5
    assert build_sampling(SamplingFlags(temperature=0.9), tuned).temperature == 0.9


@pytest.mark.parametrize(
    ("table", "ref"),
    [
        ('"owner/repo"', "owner/repo:Q4_K_M"),
        ('"owner/repo:Q8_0"', "OWNER/Repo:q8_0"),
        ('"owner/repo"', "owner/repo:Q4_K_M@main"),
        ("tiny", "/models/tiny.gguf"),
        ('"tiny.gguf"', "./tiny.gguf"),
    ],
)
def test_model_table_matches_looser_forms_of_the_reference(table: str, ref: str) -> None:
    write_config(f"[models.{table}]\ntop_k = 7\n")
    assert settings_for_model(load_settings({}), ref).top_k == 7


@pytest.mark.slow
def test_model_table_reaches_generation_end_to_end(model_path: Path, tmp_path: Path) -> None:
    """[models.tiny] max_tokens = 2 stops `ask -m tiny.gguf` after 2 tokens; env and flag win."""
    tiny = _model_copy(model_path, tmp_path, "tiny")
    write_config("max_tokens = 9\n[models.tiny]\nmax_tokens = 2\n")

    def generated(*args: str, env: dict[str, str] | None = None) -> int:
        result = run_cli(
            "ask", "-m", str(tiny), "--json", "--greedy", *args, "Count to 20.", env=env
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["stats"]["generated_tokens"]

    assert generated() == 2
    assert generated(env={"LLMCLI_MAX_TOKENS": "4"}) == 4
    assert generated("--max-tokens", "3", env={"LLMCLI_MAX_TOKENS": "4"}) == 3


def test_per_model_table_refuses_global_only_keys() -> None:
    path = write_config('[models.qwen]\ntemperature = 0.1\nmodel = "x"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings({})
    assert caught.value.line == 3 and caught.value.path == path
    assert "cannot be set per model" in caught.value.message


# ---- malformed files and values ------------------------------------------------------------


def test_malformed_file_names_line_and_column_and_exits_65(model_path: Path) -> None:
    path = write_config("temperature = 0.5\nctx = [1,\n  top_k = 3\n")
    result = run_cli("ask", "-m", str(model_path), "--max-tokens", "1", "Hi")
    assert result.returncode == 65
    err = result.stderr.decode()
    assert f"config file {path}, line 3, column" in err
    assert "not valid TOML" in err and "llmcli config edit" in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_malformed_file_does_not_break_unrelated_commands(model_path: Path) -> None:
    path = write_config("this is not toml\n")
    for args in (
        ["--help"],
        ["config", "path"],
        ["models", "--help"],
        ["models", "show", str(model_path)],
    ):
        result = run_cli(*args)
        assert result.returncode == 0, (args, result.stderr)
    assert run_cli("config", "path").stdout.decode().strip() == str(path)
    shown = run_cli("config", "show")
    assert shown.returncode == 65 and b"line 1, column " in shown.stderr


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("temprature = 0.5\n", 1, "unknown setting 'temprature' (did you mean 'temperature'?)"),
        ("\n\ntop_p = 1.5\n", 3, "top_p must be at most 1, not 1.5"),
        ('ctx = "big"\n', 1, "ctx must be a whole number, not a string ('big')"),
        ("ctx = 1.5\n", 1, "ctx must be a whole number, not 1.5"),
        ("threads = 0\n", 1, "threads must be at least 1, not 0"),
        ("temperature = true\n", 1, "temperature must be a number, not a boolean (True)"),
        ('gpu_layers = "most"\n', 1, "gpu_layers must be a number of layers, 'all' or 'auto'"),
        ('theme = "monokia"\n', 1, "did you mean 'monokai'?"),
        ("[models]\nqwen = 3\n", 2, "models.qwen must be a table of settings"),
        ('[models."a.b"]\ntop_k = -1\n', 2, "top_k must be at least 0, not -1"),
    ],
)
def test_wrong_keys_and_values_point_at_their_line(text: str, line: int, fragment: str) -> None:
    write_config(text)
    with pytest.raises(ConfigError) as caught:
        load_settings({})
    assert caught.value.line == line
    assert fragment in caught.value.message


def test_file_that_is_not_utf8_is_reported_with_its_line() -> None:
    config_file().write_bytes(b'system = "ok"\nmodel = "\xff"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings({})
    assert caught.value.line == 2 and "not UTF-8" in caught.value.message


def test_unterminated_file_reports_the_end_position() -> None:
    write_config("model = [\n")
    with pytest.raises(ConfigError) as caught:
        load_settings({})
    assert (caught.value.line, caught.value.column) == (2, 1)


def test_bad_environment_value_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="LLMCLI_CTX: ctx must be a whole number"):
        load_settings({"LLMCLI_CTX": "lots"})
    result = run_cli("config", "show", env={"LLMCLI_TEMPERATURE": "hot"})
    assert result.returncode == 2 and b"LLMCLI_TEMPERATURE" in result.stderr


def test_empty_environment_value_means_unset() -> None:
    write_config("ctx = 1024\n")
    assert load_settings({"LLMCLI_CTX": ""}).ctx == 1024


def test_llmcli_config_names_another_file(tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text("top_k = 3\n")
    data = show_json({"LLMCLI_CONFIG": str(other)})
    assert data["settings"]["top_k"] == {"value": 3, "source": "file"}
    assert run_cli(
        "config", "path", env={"LLMCLI_CONFIG": str(other)}
    ).stdout.decode().strip() == str(other)


def test_remotes_tables_are_left_to_their_owner() -> None:
    write_config('[remotes.box]\nbase_url = "http://127.0.0.1:1/v1"\n')
    from llmcli.config import read_config, remote_tables

    assert remote_tables(read_config(paths.config_file())) == {
        "box": {"base_url": "http://127.0.0.1:1/v1"}
    }


# ---- config set / unset / edit -------------------------------------------------------------


def test_set_writes_a_valid_file_and_keeps_comments() -> None:
    path = write_config(
        "# my settings\n"
        "temperature = 0.5  # warm\n"
        "\n"
        "# per model\n"
        '[models."owner/repo"]\n'
        "top_k = 10\n"
    )
    for key, value in [
        ("temperature", "0.25"),
        ("ctx", "2048"),
        ("models.owner/repo.top_k", "12"),
        ("models.qwen2.5.system", 'Say "hi"\n twice'),
        ("gpu_layers", "ALL"),
    ]:
        result = run_cli("config", "set", key, value)
        assert result.returncode == 0, result.stderr
        assert b"rewritten" not in result.stderr
    text = path.read_text()
    assert "# my settings" in text and "# per model" in text
    assert "temperature = 0.25  # warm" in text
    data = tomllib.loads(text)
    assert data["temperature"] == 0.25 and data["ctx"] == 2048 and data["gpu_layers"] == "all"
    assert data["models"]["owner/repo"] == {"top_k": 12}
    assert data["models"]["qwen2.5"] == {"system": 'Say "hi"\n twice'}
    assert text.index("ctx = 2048") < text.index("[models")
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left


def test_set_rejects_unknown_keys_and_bad_values_without_writing() -> None:
    path = write_config("top_k = 5\n")
    for args, fragment in [
        (("temprature", "1"), b"did you mean 'temperature'?"),
        (("top_p", "2"), b"top_p must be at most 1"),
        (("ctx", "big"), b"ctx must be a whole number"),
        (("models.qwen.model", "x"), b"unknown setting 'model'"),
        (("models..top_k", "1"), b"bad key"),
    ]:
        result = run_cli("config", "set", *args)
        assert result.returncode == 2, args
        assert fragment in result.stderr, result.stderr
    assert path.read_text() == "top_k = 5\n"


def test_set_refuses_to_touch_a_broken_file() -> None:
    path = write_config("top_k = \n")
    result = run_cli("config", "set", "top_k", "3")
    assert result.returncode == 65 and b"line 1" in result.stderr
    assert path.read_text() == "top_k = \n"


def test_set_creates_the_file_and_unset_removes_the_key() -> None:
    assert not paths.config_file().exists()
    assert run_cli("config", "set", "models.qwen.temperature", "0.1").returncode == 0
    assert run_cli("config", "set", "threads", "3").returncode == 0
    assert load_settings({}).threads == 3
    result = run_cli("config", "unset", "threads")
    assert result.returncode == 0, result.stderr
    assert load_settings({}).threads is None
    again = run_cli("config", "unset", "threads")
    assert again.returncode == 0 and b"is not set" in again.stderr
    assert tomllib.loads(paths.config_file().read_text()) == {
        "models": {"qwen": {"temperature": 0.1}}
    }


def test_set_falls_back_to_a_rewrite_and_says_so() -> None:
    """A dotted key spelled inline defeats line editing: the file is rewritten, with a note."""
    path = write_config("# comment\nmodels.qwen.top_k = 3\n")
    result = run_cli("config", "set", "models.qwen.top_k", "4")
    assert result.returncode == 0, result.stderr
    assert b"without its comments" in result.stderr
    assert tomllib.loads(path.read_text()) == {"models": {"qwen": {"top_k": 4}}}


def _editor(tmp_path: Path, body: str) -> str:
    script = tmp_path / "editor.py"
    script.write_text(f"import sys\npath = sys.argv[1]\n{body}\n")
    return f"{sys.executable} {script}"


def test_edit_creates_a_commented_template_and_checks_the_result(tmp_path: Path) -> None:
    editor = _editor(tmp_path, "open(path, 'a').write('temperature = 0.1\\n')")
    result = run_cli("config", "edit", env={"EDITOR": editor, "VISUAL": ""})
    assert result.returncode == 0, result.stderr
    text = paths.config_file().read_text()
    assert text.startswith("# llmcli configuration")
    assert all(f"# {name} = " in text for name in KEYS)
    assert load_settings({}).temperature == 0.1


def test_edit_reports_a_mistake_with_line_and_column(tmp_path: Path) -> None:
    write_config("top_k = 3\n")
    editor = _editor(tmp_path, "open(path, 'a').write('ctx = = 3\\n')")
    result = run_cli("config", "edit", env={"EDITOR": editor, "VISUAL": ""})
    assert result.returncode == 65
    assert b"line 2, column 7" in result.stderr


def test_edit_without_a_working_editor_says_how_to_set_one() -> None:
    result = run_cli("config", "edit", env={"EDITOR": "/nonexistent/editor", "VISUAL": ""})
    assert result.returncode == 2 and b"EDITOR" in result.stderr


def test_template_values_are_valid_when_uncommented() -> None:
    from llmcli.config import new_config_template

    examples: dict[str, str] = {}
    for line in new_config_template().splitlines():
        assignment = line[2:].split("  #")[0]
        examples.setdefault(assignment.split(" =")[0], assignment)
    assert set(KEYS) <= set(examples)
    write_config("\n".join(examples[key] for key in KEYS) + "\n")
    settings = load_settings({})
    assert all(settings.source(key) == "file" for key in KEYS)


# ---- the line editor, property-tested ------------------------------------------------------

_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
_SCALARS = st.one_of(
    _TEXT, st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), st.booleans()
)


@settings(max_examples=300, deadline=None)
@given(value=_SCALARS, key=_TEXT)
def test_format_value_round_trips_through_tomllib(value: Any, key: str) -> None:
    parsed = tomllib.loads(f"{format_key(key)} = {format_value(value)}\n")
    assert parsed == {key: value}


_BASE_FILES = [
    "",
    "# only a comment\n",
    "top_k = 1  # keep me\n\n[models.a]\n# inside\ntop_p = 0.5\n",
    '[models."x.y"]\nctx = 9\n',
    "temperature = 0.1\n[models.b]\n[models.c]\ntop_k = 1\n",
    'system = """multi\nline"""\n',
    "models.a.top_k = 4  # dotted\n",
]
_VALUES = {
    "top_k": st.integers(0, 99),
    "ctx": st.integers(1, 9999),
    "top_p": st.sampled_from([0.0, 0.25, 1.0]),
    "system": _TEXT,
}


@settings(max_examples=150, deadline=None)
@given(
    base=st.sampled_from(_BASE_FILES),
    table=st.sampled_from(["", "models.a.", "models.x.y.", "models.new one."]),
    key_and_value=st.sampled_from(sorted(_VALUES)).flatmap(
        lambda key: st.tuples(st.just(key), st.one_of(st.none(), _VALUES[key]))
    ),
)
def test_set_and_unset_always_give_the_expected_data(
    base: str, table: str, key_and_value: tuple[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Whatever the file looks like, the result parses to exactly the data asked for, and
    comments survive unless the command said it rewrote the file."""
    key, value = key_and_value
    path = tmp_path_factory.mktemp("cfg") / "config.toml"
    path.write_text(base)
    expected = tomllib.loads(base)
    target = expected
    for part in table.rstrip(".").split(".", 1) if table else ():
        target = target.setdefault(part, {})
    key_path = parse_key_path(table + key)
    if value is None:
        existed = key in target
        target.pop(key, None)
        result = unset_config_value(path, key_path)
        assert (result is not None) == existed
        if result is None:
            assert path.read_text() == base
            return
    else:
        target[key] = value
        result = set_config_value(path, key_path, str(value))
    text = path.read_text()
    assert tomllib.loads(text) == expected
    if result.kept_comments:
        comments = [line for line in base.splitlines() if line.lstrip().startswith("#")]
        assert all(line in text.splitlines() for line in comments)


def test_write_is_atomic_and_keeps_the_file_mode() -> None:
    path = write_config("top_k = 1\n")
    os.chmod(path, 0o600)
    assert run_cli("config", "set", "top_k", "2").returncode == 0
    assert path.stat().st_mode & 0o777 == 0o600
    assert tomllib.loads(path.read_text()) == {"top_k": 2}
