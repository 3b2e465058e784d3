"""Delivery reports: stored once, matched to their message, and applied to it.

``callbacks/`` reads OVHcloud's parameters into a ``ReportIn``; the report
checks look up overdue messages and make one the same way. What a ``dlr`` /
``ptt`` pair means is OVHcloud's vocabulary (``providers.ovh.codes``); the
status move itself is ``lifecycle.apply_report``.

A report names its receiver. A batch's SMS ids are mapped to receivers in
the order OVHcloud answered them; when a report's receiver is not its
message's, the mapping was wrong, and the report corrects it: the SMS id
goes to the job's message for that receiver, which gives its own id in
exchange, and the report is applied there.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from smsgateway.credits.refunds import refund
from smsgateway.db import advisory_lock, upsert_for, utcnow
from smsgateway.messages.lifecycle import apply_report
from smsgateway.models.callbacks import DeliveryReport
from smsgateway.models.messages import Message
from smsgateway.models.status import FINAL, Status
from smsgateway.numbers import receiver_key
from smsgateway.providers.ovh.codes import DLR_NOT_BILLED, outcome

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReportIn:
    provider: str
    provider_id: str
    dlr: int
    ptt: int | None
    reported_at: str | None
    description: str | None
    params: dict[str, str]
    tag: str | None = None
    receiver: str | None = None  # kept only as its ``receiver_key``

    @property
    def dedup_key(self) -> str:
        raw = f"{self.provider}|{self.provider_id}|{self.dlr}|{self.ptt}|{self.reported_at}"
        return hashlib.sha256(raw.encode()).hexdigest()


async def _lock_sms_id(session: AsyncSession, provider_id: str) -> None:
    """Serialise, until commit, the transactions that link reports to one SMS id.

    The dispatcher stores a message's SMS id and looks for early reports in one
    transaction; a report is stored and matched in another. Under PostgreSQL's
    READ COMMITTED neither sees the other's uncommitted row, so without this
    lock a report arriving in between would stay unapplied for good.
    """
    await advisory_lock(session, provider_id)


async def lock_job(session: AsyncSession, tag: str | None) -> None:
    """Serialise, until commit, what may move a job's SMS ids between its messages.

    Taken before any SMS id lock (by the dispatcher storing a job's answer,
    and by each report of the job), so two reports of one batch correct its
    ids one after the other and never overwrite each other's swap.
    """
    if tag:
        await advisory_lock(session, f"job:{tag}")


async def record_report(session: AsyncSession, report: ReportIn) -> bool:
    """Store a report once and apply it if its message is known.

    Returns False for a replay (nothing changes). A report whose message is
    not known yet stays unapplied until ``apply_pending_reports`` runs.
    """
    await lock_job(session, report.tag)
    await _lock_sms_id(session, report.provider_id)
    values = {
        "dedup_key": report.dedup_key,
        "provider": report.provider,
        "provider_id": report.provider_id,
        "dlr": report.dlr,
        "ptt": report.ptt,
        "reported_at": report.reported_at,
        "description": report.description,
        "params": report.params,
        "tag": report.tag[:20] if report.tag else None,
        "receiver_key": receiver_key(report.receiver) if report.receiver else None,
        "applied": False,
        "received_at": utcnow(),
    }
    insert = upsert_for(session)
    statement = (
        insert(DeliveryReport)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(DeliveryReport.id)
    )
    report_id = await session.scalar(statement)
    if report_id is None:
        return False
    await match_report(session, report_id)
    return True


async def match_report(session: AsyncSession, report_id: int) -> bool:
    """Attach an unapplied report to its message and apply it. True if matched."""
    report = await session.get(DeliveryReport, report_id)
    if report is None or report.applied:
        return report is not None
    # Matched on the SMS id alone, like ``apply_pending_reports``: the message
    # records the adapter that sent it ("ovh", or "fake" in local runs and
    # tests), which need not be the name of the callback URL it reports through.
    message_id = await session.scalar(
        select(Message.id).where(Message.provider_id == report.provider_id)
    )
    if message_id is None:
        orphan = await _orphan(session, report)
        if orphan is None:
            return False
        # Its job's message for this receiver lost a wrong id and awaits its own.
        orphan.provider_id = report.provider_id
        await session.flush()
        message_id = orphan.id
    return await _apply(session, message_id, report)


async def rematch_report(session: AsyncSession, dedup_key: str) -> bool:
    """Try again to match a report stored unmatched. True if it matched now."""
    found = (
        await session.execute(
            select(DeliveryReport.id, DeliveryReport.tag, DeliveryReport.provider_id).where(
                DeliveryReport.dedup_key == dedup_key, DeliveryReport.applied.is_(False)
            )
        )
    ).first()
    if found is None:
        return False
    await lock_job(session, found.tag)
    await _lock_sms_id(session, found.provider_id)
    return await match_report(session, found.id)


async def apply_pending_reports(session: AsyncSession, message_id: str, provider_id: str) -> int:
    """Apply reports that arrived before the message's provider id was stored.

    The caller holds ``lock_job`` for the message's job.
    """
    await _lock_sms_id(session, provider_id)
    reports = (
        await session.scalars(
            select(DeliveryReport)
            .where(DeliveryReport.provider_id == provider_id, DeliveryReport.applied.is_(False))
            .order_by(DeliveryReport.id)
        )
    ).all()
    applied = 0
    for report in reports:
        applied += await _apply(session, message_id, report)
    return applied


async def take_from_wrong_holders(
    session: AsyncSession, message_id: str, provider_id: str, to: str
) -> None:
    """``message_id`` (to ``to``) now holds ``provider_id``: another message to
    another number holding it had it from an answer out of order. It loses it,
    and takes its own from a report already received, if one came.

    The caller holds ``lock_job``.
    """
    key = receiver_key(to)
    holders = (
        await session.scalars(
            select(Message).where(Message.provider_id == provider_id, Message.id != message_id)
        )
    ).all()
    for holder in holders:
        if receiver_key(holder.to) == key:
            continue
        log.warning("message %s: SMS id taken back (answer out of order)", holder.id)
        holder.provider_id = None
        await session.flush()
        own = await _reported_for(session, holder)
        if own is not None:
            holder.provider_id = own
            await session.flush()
            await apply_pending_reports(session, holder.id, own)


async def unapplied_ids(session: AsyncSession, tag: str, key: str) -> list[str]:
    """SMS ids of the reports of job ``tag`` naming receiver ``key`` that matched no message."""
    ids = await session.scalars(
        select(DeliveryReport.provider_id).where(
            DeliveryReport.tag == tag,
            DeliveryReport.receiver_key == key,
            DeliveryReport.applied.is_(False),
        )
    )
    return list(ids)


async def _reported_for(session: AsyncSession, message: Message) -> str | None:
    """An SMS id a report of ``message``'s job gives its receiver, that no one holds."""
    if message.job_tag is None:
        return None
    for provider_id in await unapplied_ids(session, message.job_tag, receiver_key(message.to)):
        held = await session.scalar(
            select(Message.id).where(Message.provider_id == provider_id).limit(1)
        )
        if held is None:
            return provider_id
    return None


async def _orphan(session: AsyncSession, report: DeliveryReport) -> Message | None:
    """The message of the report's job, to its receiver, that was sent and holds no id."""
    if report.tag is None or report.receiver_key is None:
        return None
    candidates = (
        await session.scalars(
            select(Message).where(
                Message.job_tag == report.tag,
                Message.provider_id.is_(None),
                Message.status.in_([Status.SUBMITTED.value, *(s.value for s in FINAL)]),
            )
        )
    ).all()
    matching = [m for m in candidates if receiver_key(m.to) == report.receiver_key]
    return matching[0] if len(matching) == 1 else None


async def _owner(session: AsyncSession, message_id: str, report: DeliveryReport) -> str | None:
    """The message ``report`` belongs to: ``message_id``, or its batch sibling with
    the report's receiver, which then swaps SMS ids with it (see the module's text).

    Only under ``lock_job`` for the report's tag, which the report names.
    """
    if report.receiver_key is None or report.tag is None:
        return message_id
    # Whoever holds the id now: an earlier report of the job may have moved it.
    message = await session.scalar(
        select(Message).where(Message.provider_id == report.provider_id).limit(1)
    )
    if message is None or receiver_key(message.to) == report.receiver_key:
        return message.id if message is not None else message_id
    siblings = (
        await session.scalars(
            select(Message).where(
                Message.job_tag == report.tag,
                Message.id != message.id,
                Message.provider_id.is_not(None),
            )
        )
    ).all()
    matching = [m for m in siblings if receiver_key(m.to) == report.receiver_key]
    # One candidate only: a tag shared by two jobs may hold the number twice.
    sibling = matching[0] if len(matching) == 1 else None
    if message.job_tag == report.tag and not matching and await _idless_sibling(session, report):
        # The message it names holds no id yet (its outcome was lost): the holder's
        # id is wrong. It loses it; the report waits for the named message's look-up.
        log.warning("message %s: SMS id taken back (answer out of order)", message.id)
        message.provider_id = None
        await session.flush()
        return None
    if message.job_tag != report.tag or sibling is None:
        log.warning(
            "report for SMS %s names another receiver than message %s",
            report.provider_id,
            message.id,
        )
        return message.id
    message.provider_id, sibling.provider_id = sibling.provider_id, message.provider_id
    await session.flush()
    log.warning(
        "messages %s and %s: SMS ids corrected by a delivery report (answer out of order)",
        message.id,
        sibling.id,
    )
    return sibling.id


async def _idless_sibling(session: AsyncSession, report: DeliveryReport) -> bool:
    """Whether a message of the report's job, to its receiver, holds no SMS id."""
    candidates = (
        await session.scalars(
            select(Message.to).where(Message.job_tag == report.tag, Message.provider_id.is_(None))
        )
    ).all()
    return any(receiver_key(to) == report.receiver_key for to in candidates)


async def _apply(session: AsyncSession, message_id: str, report: DeliveryReport) -> bool:
    """Apply ``report`` to its message; False when it is left for another (see ``_owner``)."""
    owner = await _owner(session, message_id, report)
    if owner is None:
        return False
    message_id = owner
    report.message_id = message_id
    report.applied = True
    meaning = outcome(report.dlr, report.ptt)
    if meaning is None:
        return True
    status, reason = meaning
    now = utcnow()
    values: dict[str, object] = {"dlr_code": report.dlr, "ptt_code": report.ptt}
    if status in FINAL:
        values.update(final_at=now, due_at=None, reason=reason)
    if status == Status.DELIVERED:
        values["delivered_at"] = now
    if await apply_report(session, message_id, Status(status), values):
        log.info("message %s is %s (dlr=%s ptt=%s)", message_id, status, report.dlr, report.ptt)
        if report.dlr == DLR_NOT_BILLED:
            # OVHcloud did not bill it, so neither do we (once: see credits.refund).
            await refund(session, message_id, "provider: not billed")
    return True
