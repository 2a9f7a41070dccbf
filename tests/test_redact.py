"""Secret detection: credentials go, ordinary hyperparameters stay."""

from __future__ import annotations

import pytest

from unitrack.redact import REDACTED, is_secret_key, redact_argv, redact_mapping, redact_text


@pytest.mark.parametrize("key", ["api_key", "OPENAI_API_KEY", "hfToken", "db-password", "secret", "aws_secret_access_key", "credentials", "auth"])
def test_secret_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["lr", "max_tokens", "tokenizer_name", "num_heads", "keep_prob"])
def test_ordinary_keys(key: str) -> None:
    assert not is_secret_key(key)


def test_only_text_values_are_redacted() -> None:
    data = {"api_key": "sk-1", "key_dim": 64, "nested": {"token": "t", "max_tokens": 5}, "pad_token": ""}
    assert redact_mapping(data) == {"api_key": REDACTED, "key_dim": 64, "nested": {"token": REDACTED, "max_tokens": 5}, "pad_token": ""}


def test_uri_credentials() -> None:
    assert redact_text("postgresql://bob:pw@db/x") == f"postgresql://bob:{REDACTED}@db/x"
    assert redact_text("redis://:pw@cache:6379") == f"redis://:{REDACTED}@cache:6379"
    assert redact_text("http://host/path@v2") == "http://host/path@v2"


def test_command_lines() -> None:
    argv = ["train.py", "--api-key", "abc", "--token=xyz", "--lr", "0.1", "--db", "mysql://u:p@h/d"]
    assert redact_argv(argv) == ["train.py", "--api-key", REDACTED, f"--token={REDACTED}", "--lr", "0.1", "--db", f"mysql://u:{REDACTED}@h/d"]
