"""address forms the public-address check lets through."""

from __future__ import annotations

import pytest

from smsgateway.webhooks.outbound import check_destination


@pytest.mark.parametrize(
    "url",
    [
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data",  # NAT64 of 169.254.169.254
        "http://[64:ff9b::a00:5]/",  # NAT64 of 10.0.0.5
        "http://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
    ],
)
async def test_nat64_spellings_of_internal_addresses_are_refused(url: str) -> None:
    """On an IPv6-only host behind NAT64 (DNS64 clouds), 64:ff9b::/96 reaches IPv4."""
    with pytest.raises(ValueError, match="loopback, private or reserved"):
        await check_destination(url, allow_private=False)
