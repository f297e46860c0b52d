"""Engineered features of the example data (telco churn): new columns computed row by row.

``DERIVED`` names the new columns, ``ENGINEERED_FROM`` the contract columns ``derive`` reads,
and ``derive`` computes them from arrays, so a training frame and a handful of JSON records
(modeling/fast.py) get the same values down to the last bit. A derived name that is also a
contract column replaces that column's values (here: a missing total is filled in).

`make adopt` resets this file to no engineered features, keeping this code as a commented
pattern. The last line is adopt's fingerprint: once you edit the file, adopt leaves it alone.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

SERVICES = [
    "online_security",
    "online_backup",
    "device_protection",
    "tech_support",
    "streaming_tv",
    "streaming_movies",
]
DERIVED = ["avg_monthly_charges", "num_services", "is_new_customer"]
ENGINEERED_FROM = ["tenure", "monthly_charges", "total_charges", "phone_service", *SERVICES]


def derive(columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The engineered columns, as float64 arrays, from the ENGINEERED_FROM input columns."""
    tenure = np.asarray(columns["tenure"], dtype=np.float64)
    monthly = np.asarray(columns["monthly_charges"], dtype=np.float64)
    total = np.asarray(columns["total_charges"], dtype=np.float64)
    # Customers in their first month have no bill yet: their total is what they pay monthly.
    total = np.where(np.isnan(total), monthly * tenure, total)
    services = sum(np.asarray(columns[name]) == "Yes" for name in SERVICES)
    phone = np.asarray(columns["phone_service"], dtype=np.float64)
    return {
        "total_charges": total,
        "avg_monthly_charges": np.where(tenure > 0, total / np.maximum(tenure, 1.0), monthly),
        "num_services": services + phone,
        "is_new_customer": (tenure < 6).astype(np.float64),
    }


# adopt-fingerprint: 67abd6b451e363c4
