"""OVHcloud SMS provider: request signing, a signed HTTP client and the provider."""

from smsgateway.providers.ovh.client import OvhClient, parse_retry_after
from smsgateway.providers.ovh.provider import MAX_TAG_LENGTH, OvhProvider, build_ovh_provider
from smsgateway.providers.ovh.signing import ENDPOINTS, resolve_endpoint, sign

__all__ = [
    "ENDPOINTS",
    "MAX_TAG_LENGTH",
    "OvhClient",
    "OvhProvider",
    "build_ovh_provider",
    "parse_retry_after",
    "resolve_endpoint",
    "sign",
]
