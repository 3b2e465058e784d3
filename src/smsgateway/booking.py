"""The booking vocabulary: event types, the two roles, and who gets a text for which event.

Written once here (DESIGN.md, "Booking notifications"); the event schema, the
templates and the reminders all read it.
"""

from __future__ import annotations

from typing import Literal, get_args

EventType = Literal[
    "booking.requested",
    "booking.expiring_soon",
    "booking.accepted",
    "booking.refused",
    "booking.expired",
    "booking.starting_soon",
    "booking.cancelled",
]
Role = Literal["asker", "offeror"]

EVENT_TYPES: tuple[str, ...] = get_args(EventType)

ASKER: Role = "asker"
OFFEROR: Role = "offeror"

# Who gets a text for each event.
RECIPIENTS: dict[str, tuple[Role, ...]] = {
    "booking.requested": (OFFEROR,),
    "booking.expiring_soon": (OFFEROR,),
    "booking.accepted": (ASKER,),
    "booking.refused": (ASKER,),
    "booking.expired": (ASKER, OFFEROR),
    "booking.starting_soon": (ASKER, OFFEROR),
    "booking.cancelled": (OFFEROR,),
}
