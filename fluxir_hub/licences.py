"""Licence metadata for model and dataset cards: what is made with FLUX.1 [dev] carries its non-commercial licence."""

from __future__ import annotations

FLUX_DEV_LICENSE = {
    "license": "other",
    "license_name": "flux-1-dev-non-commercial-license",
    "license_link": "https://huggingface.co/black-forest-labs/FLUX.1-dev/blob/main/LICENSE.md",
}


def is_flux_dev(name: str | None) -> bool:
    return bool(name) and "flux.1-dev" in name.lower()


def card_licence(names: list[str | None]) -> dict[str, str]:
    """Card metadata fields for something made with the models in `names`: FLUX.1 [dev]'s licence when any is it,
    else Apache-2.0 (FLUX.1 [schnell], the embedded test and mini models)."""
    return dict(FLUX_DEV_LICENSE) if any(is_flux_dev(n) for n in names) else {"license": "apache-2.0"}


def size_category(count: int) -> str:
    """The Hub's `size_categories` value for `count` rows."""
    bounds = [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
        (100_000_000, "10M<n<100M"),
        (1_000_000_000, "100M<n<1B"),
    ]
    for bound, label in bounds:
        if count < bound:
            return label
    return (
        "n>1T"
        if count >= 10**12
        else "1B<n<10B"
        if count < 10**10
        else "10B<n<100B"
        if count < 10**11
        else "100B<n<1T"
    )
