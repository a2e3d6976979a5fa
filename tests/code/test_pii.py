"""Personal columns: dropped or pseudonymised before a snapshot exists, and at /predict."""

from __future__ import annotations

import pandas as pd
import pytest

from tasks.core.data.pii import (
    PiiError,
    looks_personal,
    protect_frame,
    protect_record,
    pseudonym,
)

FRAME = pd.DataFrame(
    {
        "customer": ["a1", "a2", "a3"],
        "email": ["ann@example.com", "bob@example.org", None],
        "phone": ["+44 20 7946 0958", "(555) 010-9999", "+1 555 0100 222"],
        "tenure": [1, 2, 3],
    }
)


def test_dropped_and_pseudonymised_columns_keep_nothing_readable():
    out, record = protect_frame(
        FRAME, {"email": "drop", "phone": "pseudonymise"}, b"k", "CHURN_PII_KEY"
    )
    assert "email" not in out and FRAME["email"].notna().any()  # the input is not changed
    assert out["phone"].str.startswith("p_").all()
    assert not set(out["phone"]) & set(FRAME["phone"])
    assert out["phone"].iloc[0] == pseudonym("+44 20 7946 0958", b"k")  # stable: joins still work
    assert pseudonym("x", b"k") != pseudonym("x", b"other key")
    assert record["columns"] == {"email": "drop", "phone": "pseudonymise"}
    assert len(record["key_id"]) == 8  # a fingerprint of the key, never the key


def test_pseudonymising_without_a_key_is_refused_naming_the_variable():
    with pytest.raises(PiiError, match="CHURN_PII_KEY is not set"):
        protect_frame(FRAME, {"phone": "pseudonymise"}, None, "CHURN_PII_KEY")


def test_a_record_gets_the_same_treatment_as_the_snapshot():
    rules = {"email": "drop", "phone": "pseudonymise"}
    record = protect_record(
        {"email": "ann@example.com", "phone": "+1 555", "tenure": 3}, rules, b"k"
    )
    assert record == {"phone": pseudonym("+1 555", b"k"), "tenure": 3}
    assert protect_record({"phone": "+1 555"}, rules, None) == {}  # no key: the field goes


def test_columns_that_look_personal_are_named_with_a_reason():
    found = looks_personal(FRAME.assign(last_name=["X", "Y", "Z"]))
    assert found == {
        "email": "values look like e-mail addresses",
        "phone": "values look like phone numbers",
        "last_name": "its name suggests personal data",
    }
