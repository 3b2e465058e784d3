"""Imports every table so ``Base.metadata`` is complete (Alembic, tests)."""

from smsgateway.callbacks.models import DeliveryReport, IncomingMessage
from smsgateway.clients.models import ApiClient, CreditEntry
from smsgateway.db import Base
from smsgateway.events.models import BookingEvent, BookingRequest
from smsgateway.messages.models import Message, SendAttempt
from smsgateway.phones.models import NumberState, UserPhone
from smsgateway.templates.models import StoredTemplate, TemplateChange
from smsgateway.webhooks.models import WebhookDelivery

__all__ = [
    "ApiClient",
    "Base",
    "BookingEvent",
    "BookingRequest",
    "CreditEntry",
    "DeliveryReport",
    "IncomingMessage",
    "Message",
    "NumberState",
    "SendAttempt",
    "StoredTemplate",
    "TemplateChange",
    "UserPhone",
    "WebhookDelivery",
]
