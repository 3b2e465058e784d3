"""``SmsProvider`` on top of OVHcloud's SMS API (``/sms/{serviceName}/...``)."""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import quote

import httpx

from smsgateway.providers.base import (
    IncomingSms,
    JobResult,
    OutgoingJob,
    OutgoingStatus,
    PermanentProviderError,
    TransientProviderError,
)
from smsgateway.providers.ovh.client import OvhClient

MAX_TAG_LENGTH: Final = 20


class OvhProvider:
    """Sends jobs through ``POST /sms/{serviceName}/jobs``.

    ``sender`` is the default alphanumeric/numeric sender registered on the OVH
    account; ``job.sender`` overrides it. With no sender at all the job is sent with
    ``senderForResponse`` (a short number the receiver can reply to).
    """

    name = "ovh"

    def __init__(self, client: OvhClient, service_name: str, sender: str | None = None) -> None:
        if not service_name:
            raise ValueError("OVH SMS service name is required")
        self.client = client
        self.service_name = service_name
        self.sender = sender or None
        self._base_path = f"/sms/{quote(service_name, safe='')}"

    def __repr__(self) -> str:
        return f"OvhProvider(service_name={self.service_name!r}, sender={self.sender!r})"

    def build_job_body(self, job: OutgoingJob) -> dict[str, Any]:
        """The JSON body of ``POST /sms/{serviceName}/jobs`` for ``job``.

        Raises ``ValueError`` for a job OVH cannot take (no receivers, tag too long).
        """
        if not job.receivers:
            raise ValueError("an SMS job needs at least one receiver")
        if len(job.tag) > MAX_TAG_LENGTH:
            raise ValueError(f"OVH SMS tag is limited to {MAX_TAG_LENGTH} characters: {job.tag!r}")
        body: dict[str, Any] = {
            "message": job.text,
            "receivers": list(job.receivers),
            "noStopClause": job.no_stop_clause,
            "priority": job.priority,
            "tag": job.tag,
        }
        if job.validity_minutes is not None:
            body["validityPeriod"] = job.validity_minutes
        sender = job.sender or self.sender
        if sender:
            body["sender"] = sender
        else:
            body["senderForResponse"] = True
        return body

    async def send(self, job: OutgoingJob) -> JobResult:
        """Submit ``job``; ``JobResult.ids`` maps each valid receiver to its OVH SMS id.

        Receivers are reported with the spelling used in ``job.receivers`` when OVH
        writes them differently (``0033…`` for ``+33…``). An answer that cannot be read
        raises ``TransientProviderError(uncertain=True)``: OVH accepted the call, so
        the caller must look the SMS up by tag before sending again.
        """
        body = self.build_job_body(job)
        answer = await self.client.call("POST", f"{self._base_path}/jobs", json=body)
        return _parse_sending_report(answer, job.receivers)

    async def find_by_tag(self, tag: str) -> list[str]:
        """Ids of SMS in the outgoing history (``GET /sms/{sn}/outgoing?tag=``) with ``tag``.

        Jobs still queued at OVH (``/sms/{sn}/jobs``, which has no tag) are not listed:
        an empty answer right after an uncertain send is not proof that nothing went out.
        """
        answer = await self.client.call("GET", f"{self._base_path}/outgoing", params={"tag": tag})
        if not isinstance(answer, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in answer
        ):
            raise TransientProviderError("OVH outgoing list has an unexpected shape")
        return [str(i) for i in answer]

    async def pending_jobs(self) -> list[str]:
        """Ids of the jobs OVH has taken and not run yet (``GET /sms/{sn}/jobs``).

        A job leaves this list when it runs, and shows in the outgoing list
        some time later; jobs carry no tag, so they are told apart by receiver.
        """
        answer = await self.client.call("GET", f"{self._base_path}/jobs")
        if not isinstance(answer, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in answer
        ):
            raise TransientProviderError("OVH job list has an unexpected shape")
        return [str(i) for i in answer]

    async def pending_job(self, job_id: str) -> str | None:
        """The receiver of a pending job (``GET /sms/{sn}/jobs/{id}``); None once it ran."""
        try:
            item = await self.client.call(
                "GET", f"{self._base_path}/jobs/{quote(str(job_id), safe='')}"
            )
        except PermanentProviderError as exc:
            if exc.status_code == 404:
                return None
            raise
        if not isinstance(item, dict) or not isinstance(item.get("receiver"), str):
            raise TransientProviderError("OVH job has an unexpected shape")
        return str(item["receiver"])

    async def get_outgoing(self, sms_id: str) -> dict[str, Any]:
        """Details of one sent SMS (``GET /sms/{sn}/outgoing/{id}``), with ``ptt`` etc."""
        answer = await self.client.call(
            "GET", f"{self._base_path}/outgoing/{quote(str(sms_id), safe='')}"
        )
        if not isinstance(answer, dict):
            raise TransientProviderError("OVH outgoing SMS has an unexpected shape")
        return answer

    async def outgoing(self, provider_id: str) -> OutgoingStatus | None:
        """``GET /sms/{sn}/outgoing/{id}``: receiver, ``deliveryReceipt`` and ``ptt``."""
        try:
            item = await self.get_outgoing(provider_id)
        except PermanentProviderError as exc:
            if exc.status_code == 404:
                return None
            raise
        dlr, ptt = item.get("deliveryReceipt"), item.get("ptt")
        return OutgoingStatus(
            provider_id=str(item.get("id", provider_id)),
            receiver=str(item.get("receiver") or ""),
            dlr=dlr if isinstance(dlr, int) else None,
            ptt=ptt if isinstance(ptt, int) else None,
            tag=str(item["tag"]) if item.get("tag") else None,
        )

    async def fetch_incoming(self) -> list[IncomingSms]:
        """Incoming SMS (``GET /sms/{sn}/incoming``, then each by id), oldest first."""
        ids = await self.client.call("GET", f"{self._base_path}/incoming")
        if not isinstance(ids, list):
            raise TransientProviderError("OVH incoming list has an unexpected shape")
        found: list[IncomingSms] = []
        for sms_id in sorted(i for i in ids if isinstance(i, int) and not isinstance(i, bool)):
            item = await self.client.call("GET", f"{self._base_path}/incoming/{sms_id}")
            if not isinstance(item, dict):
                raise TransientProviderError("OVH incoming SMS has an unexpected shape")
            found.append(
                IncomingSms(
                    provider_id=str(item.get("id", sms_id)),
                    sender=str(item.get("sender") or ""),
                    text=str(item.get("message") or ""),
                    received_at=str(item["creationDatetime"])
                    if item.get("creationDatetime")
                    else None,
                )
            )
        return found

    async def delete_incoming(self, provider_id: str) -> None:
        await self.client.call(
            "DELETE", f"{self._base_path}/incoming/{quote(str(provider_id), safe='')}"
        )

    async def fetch_blacklist(self) -> list[str]:
        """Numbers in the account's blacklist (``GET /sms/{sn}/blacklists``)."""
        numbers = await self.client.call("GET", f"{self._base_path}/blacklists")
        if not isinstance(numbers, list):
            raise TransientProviderError("OVH blacklist has an unexpected shape")
        return [str(n) for n in numbers]

    async def remove_from_blacklist(self, number: str) -> None:
        """``DELETE /sms/{sn}/blacklists/{number}`` (a 404 means it is not listed)."""
        try:
            await self.client.call(
                "DELETE", f"{self._base_path}/blacklists/{quote(number, safe='')}"
            )
        except PermanentProviderError as exc:
            if exc.status_code != 404:
                raise

    async def aclose(self) -> None:
        """Close the HTTP client if the ``OvhClient`` owns it."""
        await self.client.aclose()


def build_ovh_provider(
    endpoint: str,
    application_key: str,
    application_secret: str,
    consumer_key: str,
    service_name: str,
    sender: str | None,
    *,
    timeout: float = 10.0,
    http: httpx.AsyncClient | None = None,
) -> OvhProvider:
    """Build an ``OvhProvider`` and its ``OvhClient``.

    With ``http`` the given client is shared (and ``timeout`` is ignored: the shared
    client's own timeout applies); without it one is created, owned and closed by
    ``aclose()``.
    """
    client = OvhClient(
        endpoint,
        application_key,
        application_secret,
        consumer_key,
        http=http,
        timeout=timeout,
    )
    return OvhProvider(client, service_name, sender)


def _normalise_number(number: str) -> str:
    digits = "".join(ch for ch in number if ch.isdigit())
    return digits[2:] if digits.startswith("00") else digits


def _parse_sending_report(answer: Any, sent_receivers: list[str]) -> JobResult:
    def unreadable(detail: str) -> TransientProviderError:
        return TransientProviderError(
            f"OVH accepted the job but its answer is unreadable ({detail})", uncertain=True
        )

    if not isinstance(answer, dict):
        raise unreadable("not an object")
    ids = answer.get("ids") or []
    valid = answer.get("validReceivers") or []
    invalid = answer.get("invalidReceivers") or []
    credits = answer.get("totalCreditsRemoved") or 0
    if not (
        isinstance(ids, list)
        and all(isinstance(i, int | str) and not isinstance(i, bool) for i in ids)
        and isinstance(valid, list)
        and all(isinstance(r, str) for r in valid)
        and isinstance(invalid, list)
        and all(isinstance(r, str) for r in invalid)
        and isinstance(credits, int | float)
    ):
        raise unreadable("unexpected field types")
    # OVH returns one id per valid receiver, in order; anything else cannot be mapped.
    if len(ids) != len(valid):
        raise unreadable(f"{len(ids)} ids for {len(valid)} valid receivers")
    spelled = {_normalise_number(r): r for r in sent_receivers}

    def as_sent(receiver: str) -> str:
        return spelled.get(_normalise_number(receiver), receiver)

    return JobResult(
        ids={as_sent(r): str(i) for r, i in zip(valid, ids, strict=True)},
        invalid_receivers=[as_sent(r) for r in invalid],
        credits_removed=float(credits),
    )
