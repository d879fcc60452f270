"""[[tenants]] tables in the configuration file: what they hold, and one-line errors that name
the table's number and the key."""

from __future__ import annotations

import pytest

from swictation.application.config import ConfigError, load_settings


def _load(tmp_path, text: str):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_settings(str(path), {}, default_file=False), str(path)


def test_tenant_tables_with_their_defaults(tmp_path):
    settings, _ = _load(
        tmp_path,
        """
[guard]
tenant_wait_s = 1.5

[[tenants]]
kind = "ollama"
models = ["llama3.2:latest"]
priority = 2

[[tenants]]
kind = "comfyui"
url = "http://127.0.0.1:8189"
idle_only = false
""",
    )
    first, second = settings.tenants
    assert (first.kind, first.url, first.priority, first.models, first.idle_only) == (
        "ollama",
        None,
        2,
        ("llama3.2:latest",),
        True,
    )
    assert (second.kind, second.url, second.idle_only) == (
        "comfyui",
        "http://127.0.0.1:8189",
        False,
    )
    assert settings.guard.tuning.tenant_wait_s == 1.5
    assert settings.guard.tuning.tenant_reload is False


def test_no_tenants_by_default(tmp_path):
    settings, _ = _load(tmp_path, "[guard]\npolicy = 'default'\n")
    assert settings.tenants == ()


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        (
            '[[tenants]]\nkind = "ollama"\n[[tenants]]\nkind = "chatgpt"\n',
            "[[tenants]] #2: tenants.kind = 'chatgpt' is not allowed: expected one of ollama, "
            "comfyui, llamacpp, vllm, lmstudio, a1111, textgen",
        ),
        (
            '[[tenants]]\nkind = "ollama"\nmodel = ["x"]\n',
            "[[tenants]] #1: unknown key tenants.model (did you mean 'models'?)",
        ),
        ('[[tenants]]\nurl = "http://127.0.0.1:1"\n', "[[tenants]] #1: tenants.kind is missing"),
        (
            '[[tenants]]\nkind = "vllm"\nurl = "localhost:8000"\n',
            "[[tenants]] #1: tenants.url = 'localhost:8000' is not allowed: url must start "
            "with http:// or https://",
        ),
        (
            '[[tenants]]\nkind = "ollama"\nidle_only = "yes"\n',
            "[[tenants]] #1: tenants.idle_only = 'yes' is not allowed: expected true or false",
        ),
        (
            '[[tenants]]\nkind = "comfyui"\nmodels = ["sdxl"]\n',
            "[[tenants]] #1: tenants.models: comfyui releases everything at once; models "
            "applies to ollama, llamacpp, lmstudio, textgen",
        ),
        ("[tenants]\nkind = 'ollama'\n", "tenants must be [[tenants]] tables"),
        (
            "[guard]\ntenant_wait_s = -1\n",
            "guard.tenant_wait_s = -1 is not allowed",
        ),
    ],
)
def test_a_bad_tenant_table_is_one_line_naming_the_table_and_the_key(tmp_path, tables, message):
    path = tmp_path / "config.toml"
    path.write_text(tables)
    with pytest.raises(ConfigError) as caught:
        load_settings(str(path), {}, default_file=False)
    text = str(caught.value)
    assert text.startswith(str(path))
    assert message in text
    assert "\n" not in text
