"""The collector: MQTT messages from nodes into the store, acked only once durably written.

``intake`` checks one message and turns it into points (pure); ``batch`` writes batches durably,
isolating what the store refuses; ``service`` is the MQTT side (subscribe, ack, receipt), with
the writer on a thread of its own; ``lean_properties`` makes paho decode MQTT 5 messages cheaply.
"""

from cloud.collector.batch import Batch, BatchWriter, Message, Written
from cloud.collector.intake import Accepted, Ignored, Intake, Outcome, Rejected
from cloud.collector.service import Collector, Counters

__all__ = [
    "Accepted",
    "Batch",
    "BatchWriter",
    "Collector",
    "Counters",
    "Ignored",
    "Intake",
    "Message",
    "Outcome",
    "Rejected",
    "Written",
]
