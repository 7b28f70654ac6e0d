"""Sensor agents: each reads one kind of sensor and emits readings for the outbox.

:func:`build_agents` picks a node's agents from its kind; the runtime runs each until stop.
"""

from edge.agents.base import Agent, AgentContext, Emit, build_agents

__all__ = ["Agent", "AgentContext", "Emit", "build_agents"]
