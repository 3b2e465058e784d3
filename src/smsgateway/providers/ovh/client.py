"""A small signed HTTP client for the OVHcloud API (application-key authentication).

Error mapping into the ``providers.base`` hierarchy:

=====================================================  ==================================
failure                                                raised
=====================================================  ==================================
connect error / connect or pool timeout                ``TransientProviderError``,
                                                       ``uncertain=False`` (nothing sent)
read/write timeout, read/write error, protocol error   ``TransientProviderError``,
(the request may have reached OVH)                     ``uncertain=True``
429                                                    ``TransientProviderError`` with
                                                       ``retry_after`` from Retry-After
408 and 5xx                                            ``TransientProviderError``,
                                                       ``uncertain`` for non-GET methods
401, 403, or 400 about the signature or timestamp       ``TransientProviderError``,
(after one clock re-sync: credentials to fix)          ``uncertain=False``
other 4xx                                              ``PermanentProviderError`` with
                                                       OVH's ``message``
2xx with an unreadable JSON body                       ``TransientProviderError``,
                                                       ``uncertain`` for non-GET methods
=====================================================  ==================================

Clock drift: OVH refuses signatures whose timestamp is too far from its own clock, so
the first signed call fetches ``GET {base}/auth/time`` (unsigned) and caches
``offset = ovh_time - local_time``. If OVH later answers 400/401/403 with a complaint
about the signature or the timestamp, the offset is fetched again and the call is
retried once: OVH rejected the request before doing anything, so repeating it is safe
even for a POST.
"""

from __future__ import annotations

import asyncio
import email.utils
import json as jsonlib
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC
from typing import Any, Final

import httpx

from smsgateway.providers.base import (
    PermanentProviderError,
    TransientProviderError,
    check_deadline,
)
from smsgateway.providers.ovh.signing import resolve_endpoint, sign

logger = logging.getLogger(__name__)

_MAX_REASON: Final = 300
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
# OVH's answers to a bad clock are not formally documented; these cover the error codes
# and wordings seen in the wild ("Invalid signature", "Query out of time", ...).
_CLOCK_ERROR_CODES: Final = frozenset({"INVALID_SIGNATURE", "QUERY_TIME_OUT", "INVALID_TIMESTAMP"})
_CLOCK_HINTS: Final = ("timestamp", "signature", "out of time", "time out")

QueryValue = str | int | float | bool
Params = Mapping[str, QueryValue | list[QueryValue]]


class OvhClient:
    """Signs and sends OVH API calls over one shared ``httpx.AsyncClient``.

    ``endpoint`` is an endpoint name (``"ovh-eu"``) or a base URL
    (see :func:`resolve_endpoint`). When ``http`` is given it is shared and not
    closed by :meth:`aclose`; otherwise the client creates and owns one with
    ``timeout`` seconds for every phase. The secrets are only used for signing:
    they never appear in logs, exception messages or ``repr``.
    """

    def __init__(
        self,
        endpoint: str,
        application_key: str,
        application_secret: str,
        consumer_key: str,
        *,
        http: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not (application_key and application_secret and consumer_key):
            raise ValueError("OVH application key, application secret and consumer key are needed")
        self.base_url = resolve_endpoint(endpoint)
        self._application_key = application_key
        self._application_secret = application_secret
        self._consumer_key = consumer_key
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=timeout)
        self._clock = clock
        self._time_offset: int | None = None
        self._time_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"OvhClient(base_url={self.base_url!r})"

    @property
    def owns_http(self) -> bool:
        """Whether :meth:`aclose` closes the underlying ``httpx.AsyncClient``."""
        return self._owns_http

    @property
    def time_offset(self) -> int | None:
        """Cached ``ovh_time - local_time`` in seconds, ``None`` before the first sync."""
        return self._time_offset

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it; a shared one is left open."""
        if self._owns_http:
            await self._http.aclose()

    async def sync_time(self) -> int:
        """Fetch OVH's clock (``GET /auth/time``, unsigned) and cache the offset.

        Failures raise ``TransientProviderError(uncertain=False)``: no signed request
        has been sent yet.
        """
        async with self._time_lock:
            return await self._fetch_offset()

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
    ) -> Any:
        """Send a signed request to ``{base_url}{path}`` and return the decoded JSON answer.

        ``path`` starts with ``/`` and has its variable segments already quoted.
        ``json`` (when not ``None``) is serialised once and those exact bytes are both
        signed and sent. Returns ``None`` for an empty answer. Raises a
        ``ProviderError`` subclass on failure (see the module docstring).
        """
        method = method.upper()
        body = (
            None
            if json is None
            else jsonlib.dumps(json, separators=(",", ":"), ensure_ascii=True).encode("ascii")
        )
        await self._ensure_time_offset()
        response = await self._send_signed(method, path, params, body)
        if self._is_clock_complaint(response):
            logger.warning(
                "OVH rejected the request signature (HTTP %s); re-syncing clock and retrying once",
                response.status_code,
            )
            await self.sync_time()
            response = await self._send_signed(method, path, params, body)
        return self._decode(method, response)

    async def _ensure_time_offset(self) -> None:
        if self._time_offset is not None:
            return
        async with self._time_lock:
            # Another task may have synced while this one waited for the lock.
            if self._time_offset is None:
                await self._fetch_offset()

    async def _fetch_offset(self) -> int:
        url = f"{self.base_url}/auth/time"
        try:
            response = await self._http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise TransientProviderError(
                f"OVH clock sync failed: {type(exc).__name__}", uncertain=False
            ) from exc
        if response.status_code != 200:
            raise TransientProviderError(
                f"OVH clock sync failed: HTTP {response.status_code}",
                status_code=response.status_code,
                retry_after=self._retry_after(response),
                uncertain=False,
            )
        try:
            server_time = int(response.json())
        except (ValueError, TypeError) as exc:
            raise TransientProviderError(
                "OVH clock sync failed: unreadable /auth/time answer", uncertain=False
            ) from exc
        offset = server_time - int(self._clock())
        self._time_offset = offset
        logger.debug("OVH clock offset is %+d s", offset)
        return offset

    async def _send_signed(
        self, method: str, path: str, params: Params | None, body: bytes | None
    ) -> httpx.Response:
        request = self._http.build_request(
            method,
            f"{self.base_url}{path}",
            params=params,
            content=body,
            headers={
                "Accept": "application/json",
                "Content-Type": "application/json",
                "X-Ovh-Application": self._application_key,
                "X-Ovh-Consumer": self._consumer_key,
            },
        )
        offset = self._time_offset or 0
        timestamp = int(self._clock()) + offset
        # Sign the URL httpx built (query string encoded, client default params merged),
        # i.e. exactly what goes on the wire.
        request.headers["X-Ovh-Timestamp"] = str(timestamp)
        request.headers["X-Ovh-Signature"] = sign(
            self._application_secret,
            self._consumer_key,
            method,
            str(request.url),
            body or b"",
            timestamp,
        )
        check_deadline()
        try:
            response = await self._http.send(request)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise TransientProviderError(
                f"OVH unreachable: {type(exc).__name__}", uncertain=False
            ) from exc
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
            # Raised before anything is sent; a configuration or programming error.
            raise PermanentProviderError(f"OVH request not sendable: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            # Read/write timeouts and errors, protocol errors: the request may have reached
            # OVH and been processed; the answer is what got lost.
            raise TransientProviderError(
                f"OVH answer lost: {type(exc).__name__}", uncertain=True
            ) from exc
        logger.debug("OVH %s %s -> HTTP %s", method, path, response.status_code)
        return response

    def _is_clock_complaint(self, response: httpx.Response) -> bool:
        if response.status_code not in (400, 401, 403):
            return False
        payload = _json_or_none(response)
        if not isinstance(payload, dict):
            return False
        if payload.get("errorCode") in _CLOCK_ERROR_CODES:
            return True
        message = str(payload.get("message", "")).lower()
        return any(hint in message for hint in _CLOCK_HINTS)

    def _decode(self, method: str, response: httpx.Response) -> Any:
        status = response.status_code
        maybe_processed = method not in _SAFE_METHODS
        if 200 <= status < 300:
            if status == 204 or not response.content:
                return None
            try:
                return response.json()
            except ValueError as exc:
                raise TransientProviderError(
                    f"OVH answered HTTP {status} with an unreadable body",
                    status_code=status,
                    uncertain=maybe_processed,
                ) from exc
        reason = self._reason(response)
        if status == 429:
            raise TransientProviderError(
                reason, status_code=status, retry_after=self._retry_after(response)
            )
        if status == 408 or status >= 500:
            raise TransientProviderError(
                reason,
                status_code=status,
                retry_after=self._retry_after(response),
                uncertain=maybe_processed,
            )
        if status in (401, 403) or self._is_clock_complaint(response):
            # Refused credentials or signature: OVH did nothing, and the fix is
            # on our side (keys, clock), so the messages wait instead of failing.
            raise TransientProviderError(reason, status_code=status, uncertain=False)
        if 400 <= status < 500:
            raise PermanentProviderError(reason, status_code=status)
        # 1xx/3xx: OVH does not redirect API calls; treat as a broken answer.
        raise TransientProviderError(reason, status_code=status, uncertain=maybe_processed)

    def _reason(self, response: httpx.Response) -> str:
        """``"OVH HTTP 400 Client::BadRequest: <message>"``, truncated and scrubbed."""
        payload = _json_or_none(response)
        parts = [f"OVH HTTP {response.status_code}"]
        if isinstance(payload, dict):
            error_class = payload.get("class")
            message = payload.get("message")
            if isinstance(error_class, str) and error_class:
                parts.append(f" {error_class}")
            if isinstance(message, str) and message:
                parts.append(f": {message}")
        reason = "".join(parts)
        # OVH does not normally echo credentials, but a reason is stored and shown.
        for secret in (self._application_secret, self._consumer_key, self._application_key):
            reason = reason.replace(secret, "***")
        reason = " ".join(reason.split())
        return reason if len(reason) <= _MAX_REASON else reason[: _MAX_REASON - 1] + "…"

    def _retry_after(self, response: httpx.Response) -> float | None:
        return parse_retry_after(response.headers.get("Retry-After"), now=self._clock())


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date).

    Returns ``None`` when absent or unreadable and never a negative number.
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000" parses naive; RFC 9110 dates are GMT anyway
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN / inf
        return None
    return max(0.0, seconds)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
