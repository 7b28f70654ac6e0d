"""Topics of the wire contract v1: ``{prefix}/v1/{node}/{kind}[/...]``.

``{node}`` is the node's MQTT username, so the broker ACL pattern ``{prefix}/v1/%u/#`` keeps
every node inside its own subtree.

>>> t = Topics("machikado")
>>> t.data("rr-01")
'machikado/v1/rr-01/data'
>>> t.parse("machikado/v1/rr-01/cmd/rebirth")
TopicParts(node='rr-01', kind='cmd', rest=('rebirth',))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from protocol.errors import InvalidTopic
from protocol.limits import NODE_ID

VERSION_LEVEL = "v1"
Kind = Literal["birth", "state", "data", "receipt", "cmd", "consult"]
KINDS: frozenset[str] = frozenset({"birth", "state", "data", "receipt", "cmd", "consult"})


@dataclass(frozen=True, slots=True)
class TopicParts:
    """A parsed contract topic."""

    node: str
    kind: str
    rest: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Topics:
    """Builds and parses the topics under one prefix."""

    prefix: str = "machikado"

    def __post_init__(self) -> None:
        if not self.prefix or any(c in self.prefix for c in "+#\x00") or self.prefix.endswith("/"):
            raise InvalidTopic(
                f"prefix {self.prefix!r}: must be non-empty, without + # or a trailing /"
            )

    def _node(self, node: str) -> str:
        if not NODE_ID.fullmatch(node):
            raise InvalidTopic(f"node id {node!r}: must match {NODE_ID.pattern}")
        return f"{self.prefix}/{VERSION_LEVEL}/{node}"

    def birth(self, node: str) -> str:
        return f"{self._node(node)}/birth"

    def state(self, node: str) -> str:
        return f"{self._node(node)}/state"

    def data(self, node: str) -> str:
        return f"{self._node(node)}/data"

    def receipt(self, node: str) -> str:
        return f"{self._node(node)}/receipt"

    def cmd(self, node: str, name: str = "+") -> str:
        return f"{self._node(node)}/cmd/{name}"

    def consult(self, node: str, *parts: str) -> str:
        return "/".join((f"{self._node(node)}/consult", *parts))

    def subtree(self, node: str) -> str:
        """The node's whole subtree, as in the broker ACL."""
        return f"{self._node(node)}/#"

    def every(self, kind: Kind) -> str:
        """A subscription filter for one kind of message from every node."""
        return f"{self.prefix}/{VERSION_LEVEL}/+/{kind}"

    def parse(self, topic: str) -> TopicParts:
        """Split a topic into node, kind and the levels after it; raise :class:`InvalidTopic`."""
        head = f"{self.prefix}/{VERSION_LEVEL}/"
        if not topic.startswith(head):
            raise InvalidTopic(f"topic {topic!r}: not under {head!r}")
        levels = topic[len(head) :].split("/")
        if len(levels) < 2:
            raise InvalidTopic(f"topic {topic!r}: no message kind after the node id")
        node, kind, *rest = levels
        if not NODE_ID.fullmatch(node):
            raise InvalidTopic(f"topic {topic!r}: node id {node!r} must match {NODE_ID.pattern}")
        if kind not in KINDS:
            raise InvalidTopic(f"topic {topic!r}: unknown kind {kind!r}")
        return TopicParts(node=node, kind=kind, rest=tuple(rest))
