"""Test doubles anyone can run.

``smsgateway.testing.fake_ovh`` is a fake OVHcloud SMS API (signed requests, delivery
reports, fault injection); run it with ``python -m smsgateway.testing.fake_ovh``. Nothing
is imported here, so running that module does not import it twice.
"""
