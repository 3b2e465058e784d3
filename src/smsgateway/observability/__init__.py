"""What ops watch: Prometheus metrics, JSON logs and the request id that ties them together.

* ``metrics``: the per-process registry (HTTP, provider calls, delivery reports) and the
  ``/metrics`` endpoint, which adds gauges read from the database (``gauges``).
* ``provider``: an ``SmsProvider`` decorator that times and counts every provider call.
* ``logging``: JSON or text log lines with the request id, phone numbers masked.
* ``middleware``: the ASGI middleware giving every request an id, an access log line
  and its HTTP metrics.
"""
