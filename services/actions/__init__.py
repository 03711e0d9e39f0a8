"""The actions worker: turns transitions into webhook deliveries and delivers them, signed,
with retries, per-endpoint circuit breakers and dead letters; plus the delivery API.

- `worker.py` assembles it from the parts a run mode hands it; `app.py` is the distributed mode
  (Kafka + PostgreSQL), `services/dev/app.py` the embedded one.
- In: `consumer.py` (transitions to deliveries, `deliveries.py` plans them). Out: `dispatcher.py`
  claims due deliveries and runs `attempt.py` over `transport.py` (guarded by `egress.py`),
  signed by `signing.py`, paced by `retry.py` and `breaker.py`. `store.py` is the deliveries'
  and endpoints' tables; `routes.py` the delivery API.
"""
