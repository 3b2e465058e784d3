"""smsgateway: booking notifications by SMS through OVHcloud."""

__version__ = "0.1.0"
