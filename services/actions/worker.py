"""The actions worker, assembled in one place from the parts a run mode hands it.

`polku actions` (services/actions/app.py) hands it a Kafka consumer and producer and
PostgreSQL; `polku dev` (services/dev/app.py) the embedded log and SQLite. Both get the same
transport, dispatcher and transition consumer, with the same hooks and timeouts, from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack

from sqlalchemy.ext.asyncio import AsyncEngine

from services.actions import metrics
from services.actions.consumer import TransitionConsumer
from services.actions.deliveries import endpoints_of
from services.actions.dispatcher import Dispatcher
from services.actions.egress import EgressPolicy, guarded_transport
from services.actions.settings import ActionsSettings
from services.actions.signing import SigningSecrets
from shared.clock import Clock
from shared.journey import Journey
from shared.runtime import start_background
from shared.streams import RecordConsumer, RecordWriter
from shared.wire import Topics

# Beyond the grace its running attempts get, the dispatcher's time to write their results.
DISPATCHER_STOP_MARGIN_S = 15.0
# How long the transition consumer has, on the way out, to finish its batch and leave the group.
CONSUMER_STOP_TIMEOUT_S = 30.0


def start_actions(
    stack: AsyncExitStack,
    *,
    consumer: RecordConsumer,
    writer: RecordWriter,
    engine: AsyncEngine,
    settings: ActionsSettings,
    topics: Topics,
    journeys: Sequence[Journey],
    clock: Clock,
    egress: EgressPolicy,
    secrets: SigningSecrets,
) -> Dispatcher:
    """Run the dispatcher and the transition consumer until `stack` closes; the dispatcher is
    returned for the delivery API (a replay wakes it, enabling an endpoint closes its breaker).

    Closed in reverse: the transition consumer stops taking transitions, the dispatcher
    finishes its running attempts (or leaves them to their leases), then the transport closes.

    :param consumer: a member of the worker's consumer group (`settings.group_id`), not started.
    :param writer: where records that are not transitions are dead-lettered (the same log).
    :param egress: which addresses webhooks may reach.
    :param secrets: where the endpoints' signing secrets are found.
    """
    metrics.count_from_zero(endpoints_of(journeys))
    # No client on top: no proxy from the environment (it would bypass the egress check), no
    # redirects, no cookies; see attempt.py.
    transport = guarded_transport(egress)
    stack.push_async_callback(transport.aclose)
    dispatcher = Dispatcher(engine, settings, transport, clock, secrets=secrets)
    start_background(stack, "actions-dispatcher", dispatcher.run(), dispatcher.stop,
                     settings.shutdown_grace_s + DISPATCHER_STOP_MARGIN_S)
    transitions = TransitionConsumer(
        consumer, writer, engine, settings, topics, {j.id: j for j in journeys}, clock,
        dispatcher=dispatcher,
    )
    start_background(stack, "actions-consumer", transitions.run(), transitions.stop,
                     CONSUMER_STOP_TIMEOUT_S)
    return dispatcher
