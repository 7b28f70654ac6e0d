"""``machikado edge ...``: run a node, and ask a running node how it is."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import typer

app = typer.Typer(help="The node runtime on a Raspberry Pi.", no_args_is_help=True)

ConfigOption = typer.Option(..., "--config", "-c", help="The node's TOML config.", exists=False)


@app.command()
def run(config: Path = ConfigOption) -> None:
    """Run the node's agents, outbox and MQTT link until SIGTERM or Ctrl-C (then flush, exit)."""
    from edge.config import load_config
    from edge.runtime import NodeRuntime

    cfg = load_config(config)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await NodeRuntime(cfg).run(stop)

    asyncio.run(main())


@app.command()
def status(config: Path = ConfigOption) -> None:
    """Print, as JSON, what the node holds: stream, last seq, pending rows and age, counters."""
    from edge.config import load_config
    from edge.outbox import Outbox
    from edge.runtime import status_path

    cfg = load_config(config)
    now = time.time()
    out = {"node": cfg.node.id, **Outbox.read_stats(cfg.outbox_path).to_json(now)}
    try:
        live = json.loads(status_path(cfg).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        live = None
    if live is not None:
        out["link"] = live.get("link", {})
        out["status_age_s"] = round(now - float(live.get("written_at", now)), 1)
    typer.echo(json.dumps(out, indent=2, ensure_ascii=False))
