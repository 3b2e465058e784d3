"""Background work: one supervised loop, one retry strategy, one way to claim rows.

Every background loop of a process (dispatcher, webhook sender, report checks,
incoming poller, blacklist sync, campaign worker) runs on ``loop.SupervisedLoop``;
rows are leased with ``claim.claim_rows``; retries of a message, of a webhook and of
a failed pass all wait as ``retry.RetryPolicy`` says. This package imports only the
bottom layer (SQLAlchemy, the standard library), so every domain can import it.
"""
