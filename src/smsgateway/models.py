"""Imports every table so ``Base.metadata`` is complete (Alembic, tests)."""

from smsgateway.callbacks.models import DeliveryReport
from smsgateway.clients.models import ApiClient
from smsgateway.db import Base
from smsgateway.events.models import BookingEvent
from smsgateway.messages.models import Message, SendAttempt
from smsgateway.phones.models import NumberState, UserPhone

__all__ = [
    "ApiClient",
    "Base",
    "BookingEvent",
    "DeliveryReport",
    "Message",
    "NumberState",
    "SendAttempt",
    "UserPhone",
]
