"""Imports every table so ``Base.metadata`` is complete (Alembic, tests)."""

from smsgateway.db import Base
from smsgateway.models.callbacks import DeliveryReport, IncomingMessage
from smsgateway.models.campaigns import Campaign, CampaignChunk
from smsgateway.models.clients import ApiClient, CreditEntry
from smsgateway.models.events import BookingEvent, BookingRequest
from smsgateway.models.messages import Message, SendAttempt
from smsgateway.models.phones import NumberState, UserPhone
from smsgateway.models.providers import ProviderCallWindow, ProviderState
from smsgateway.models.templates import StoredTemplate, TemplateChange
from smsgateway.models.webhooks import WebhookDelivery

__all__ = [
    "ApiClient",
    "Base",
    "BookingEvent",
    "BookingRequest",
    "Campaign",
    "CampaignChunk",
    "CreditEntry",
    "DeliveryReport",
    "IncomingMessage",
    "Message",
    "NumberState",
    "ProviderCallWindow",
    "ProviderState",
    "SendAttempt",
    "StoredTemplate",
    "TemplateChange",
    "UserPhone",
    "WebhookDelivery",
]
