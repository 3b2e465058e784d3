"""Imports every table so ``Base.metadata`` is complete (Alembic, tests)."""

from smsgateway.callbacks.models import DeliveryReport, IncomingMessage
from smsgateway.campaigns.models import Campaign, CampaignChunk
from smsgateway.clients.models import ApiClient, CreditEntry
from smsgateway.db import Base
from smsgateway.events.models import BookingEvent, BookingRequest
from smsgateway.messages.models import Message, SendAttempt
from smsgateway.phones.models import NumberState, UserPhone
from smsgateway.providers.models import ProviderCallWindow, ProviderState
from smsgateway.templates.models import StoredTemplate, TemplateChange
from smsgateway.webhooks.models import WebhookDelivery

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
