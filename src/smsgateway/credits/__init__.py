"""Credits: the ledger, reservations, campaign holds, refunds and the low-credit alert.

Every change of a client's balance is one conditional ``UPDATE`` of its row plus
``credit_ledger`` rows, in the caller's transaction; the ledger's deltas always add
up to the balance. Unlimited clients (no quota, a null balance) are not charged.

- ``ledger``: the rows and the balance itself: crediting, grants and adjustments
  (top-ups, quota changes), the ledger's sum and pages.
- ``reservations``: the credits of accepted messages (``reserve``, then
  ``commit_reserved``), and the ``402`` when they run short.
- ``holds``: a campaign's credits, held whole up front and handed to its
  messages batch by batch; what is left comes back at the end.
- ``refunds``: what a message reserved comes back once when it is never billed.
- ``alert``: the low-credit alert (``quota.low``), one per crossing below the
  client's threshold.
- ``problems``: the ``402`` problem and how amounts read in details.

**The low-credit alert.** ``api_clients.low_credit_alerted`` is written only by
``alert``:

- a new client starts armed (the column's default, ``false``);
- ``alert.check`` sends the ``quota.low`` webhook and flips the flag when a
  balance falls below the threshold: reservations, campaign holds, and
  ``alert.sync`` after an administrator changes credits, quota or threshold;
- ``alert.rearm`` is the one place it is armed again, when the balance is back
  at or above the threshold (or either is gone): every credit to the balance
  (``ledger.credit``: refunds, top-ups, a campaign's release) and ``alert.sync``.

On PostgreSQL a reservation's debit is taken at commit by the deferred trigger
``credit_ledger_debit_at_commit`` (function ``smsgw_debit_reservation``, migration
0008; see ``reservations``). The trigger neither reads nor writes the alert: a
debit only lowers the balance, so it never re-arms, and the crossing it makes is
sent before the commit, from the balance the reservation expects to leave.
"""
