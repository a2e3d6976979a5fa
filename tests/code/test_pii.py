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
        "email": "100% of sampled values look like e-mail addresses",
        "phone": "100% of sampled values look like phone numbers",
        "last_name": "its name suggests personal data",
    }


def test_decimals_amounts_dates_and_coordinates_are_not_phone_numbers():
    """Columns from public tables that an earlier pattern took for phones (HMDA's loan ratio,
    amounts with cents, ISO dates and time stamps, latitudes and longitudes)."""
    frame = pd.DataFrame(
        {
            "lvrat": ["0.921875", "0.8", "0.920398", "0.865"],
            "amount": ["1353.00", "-2500.50", "1,234,567", "10.234.567"],
            "flight_date": ["2013-01-01", "2013-12-31", "01/05/2013", "05.01.2013"],
            "time_hour": ["2017-01-01T06:00:42Z", "2013-01-01 05:00:00+01:00"] * 2,
            "lat": ["40.7484", "-73.9857", "51.5072", "-0.1276"],
            "ip_like": ["192.168.1.1", "10.0.0.12", "172.16.4.2", "8.8.8.8"],
        }
    )
    assert looks_personal(frame) == {}


def test_a_phone_column_needs_most_of_its_values_in_a_phone_shape():
    mostly = ["+44 20 7946 0958", "(555) 010-9999", "555.010.9999", "555-0100", "n/a"]
    assert "phone" in looks_personal(pd.DataFrame({"contact": mostly}))["contact"]
    few = ["+44 20 7946 0958", "12.5", "13.5", "14.5", "15.5"]
    assert looks_personal(pd.DataFrame({"contact": few})) == {}


def test_the_target_is_never_proposed_as_personal():
    frame = pd.DataFrame({"card": ["yes", "no"], "x": [1, 2]})
    assert looks_personal(frame) == {"card": "its name suggests personal data"}
    assert looks_personal(frame, exclude={"card"}) == {}
