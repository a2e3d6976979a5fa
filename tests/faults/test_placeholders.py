"""``.env.example``'s placeholder is refused as a secret (issue 40).

Before: ``change-me`` (the value ``.env.example`` gives every secret) was accepted as the
admin token, a labeller's token and the key of the pseudonyms.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from flows.runtime.processes import tool_env
from service.app import check_secrets
from tasks.core.data.pii import PiiError, key_from_env
from tasks.core.env import PlaceholderSecret


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CHURN_ADMIN_TOKEN", "change-me"),
        ("CHURN_FEEDBACK_TOKENS", "crm=change-me"),
        ("CHURN_PII_KEY", "Change-Me"),
    ],
)
def test_the_placeholder_is_refused_naming_the_variable(monkeypatch, variable, value):
    for name in ("CHURN_ADMIN_TOKEN", "CHURN_FEEDBACK_TOKENS", "CHURN_PII_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, value)
    with pytest.raises(PlaceholderSecret, match=f"{variable} still holds the placeholder"):
        check_secrets()
    if variable == "CHURN_PII_KEY":
        with pytest.raises(PiiError, match="CHURN_PII_KEY still holds the placeholder"):
            key_from_env("CHURN_PII_KEY")
    # make serve stops before starting any worker, with the message
    done = subprocess.run(
        [sys.executable, "-m", "service.serve", "--port", "1"],
        capture_output=True,
        text=True,
        env=tool_env({variable: value}),
        timeout=60,
    )
    assert done.returncode == 2 and f"{variable} still holds the placeholder" in done.stderr


def test_real_secrets_pass(monkeypatch):
    monkeypatch.setenv("CHURN_ADMIN_TOKEN", "q8Xf2-a-real-token")
    monkeypatch.setenv("CHURN_PII_KEY", "another-real-key")
    check_secrets()
