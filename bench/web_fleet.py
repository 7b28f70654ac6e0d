"""A year of a 30-node fleet for the web benchmark: the manifest and the points, in InfluxDB's
line protocol, at the rates the nodes really report (their defaults, a working day's use).

Per node and hour, about: 12 envelopes (a ``link`` point each, one every 5 minutes), 12
``node_health`` reports; restrooms 12 ``occupancy`` reports (2 stalls, every 10 minutes) and
about 9 ``visit`` points by day; vehicles 2 ``trip`` points and 6 ``ride`` reports an hour of
the day; stations 36 ``parked_vehicle`` reports (3 vehicles, every 5 minutes); kiosks 20
``kiosk_usage`` cells. About 10 million points for 30 nodes over 365 days. Some envelopes are
lost (one in 2,000) and two nodes start a new stream mid-year, so completeness has something
to show. Deterministic: the same seed gives the same points.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

#: (kind, how many, id prefix, trial id, trial name)
KINDS = (
    ("restroom", 12, "rr", "restroom-health", "Public restroom health check"),
    ("vehicle", 8, "mv", "micro-mobility", "Shared micro-mobility"),
    ("station", 5, "st", "micro-mobility", "Shared micro-mobility"),
    ("kiosk", 5, "ks", "resident-kiosk", "Resident information kiosk"),
)
LOSS = 1 / 2000


@dataclass(frozen=True)
class BenchNode:
    id: str
    kind: str
    trial: str
    site: str


def nodes() -> list[BenchNode]:
    out = []
    for kind, count, prefix, trial, _name in KINDS:
        for i in range(1, count + 1):
            out.append(
                BenchNode(f"{prefix}-{i:02d}", kind, trial, f"{trial}-site-{(i - 1) // 3 + 1}")
            )
    return out


def manifest() -> str:
    """The fleet manifest of the benchmark's 30 nodes."""
    lines = []
    trials = {(t, n) for _k, _c, _p, t, n in KINDS}
    for trial, name in sorted(trials):
        lines.append(f'[[trials]]\nid = "{trial}"\nname = "{name}"\nstarted = 2025-01-01\n')
    for site in sorted({(n.site, n.trial) for n in nodes()}):
        lines.append(f'[[sites]]\nid = "{site[0]}"\nname = "{site[0]}"\ntrial = "{site[1]}"\n')
    for n in nodes():
        lines.append(
            f'[[nodes]]\nid = "{n.id}"\nkind = "{n.kind}"\ntrial = "{n.trial}"\nsite = "{n.site}"\n'
        )
    return "\n".join(lines)


def lines(end: datetime, *, days: int = 365, seed: int = 1) -> Iterator[list[str]]:
    """Line protocol (second precision), a day of the whole fleet per yielded list."""
    rng = random.Random(seed)
    start = (end - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    fleet = nodes()
    seq = {n.id: 0 for n in fleet}
    stream = {n.id: f"{n.id.replace('-', '')}aaaa0001" for n in fleet}
    reset_at = {fleet[3].id: days // 2, fleet[20].id: days // 3}
    for day in range(days):
        out: list[str] = []
        for n in fleet:
            if reset_at.get(n.id) == day:
                stream[n.id] = f"{n.id.replace('-', '')}bbbb0002"
                seq[n.id] = 0
            tags = f"node={n.id},site={n.site},trial={n.trial}"
            for hour in range(24):
                base = int((start + timedelta(days=day, hours=hour)).timestamp())
                busy = 7 <= (hour + 9) % 24 <= 21  # JST daytime
                for k in range(12):  # an envelope every 5 minutes
                    seq[n.id] += 1
                    if rng.random() < LOSS:
                        continue
                    t = base + k * 300 + rng.randrange(0, 60)
                    out.append(
                        f"link,node={n.id},stream={stream[n.id]} seq={seq[n.id]}i,"
                        f"readings={rng.randrange(1, 9)}i,latency_s={rng.random() * 0.4:.3f} {t}"
                    )
                for k in range(12):
                    t = base + k * 300 + 7
                    out.append(
                        f"node_health,{tags},sensor=node outbox_readings={rng.randrange(0, 3)}i,"
                        f"cpu_temp_c={45 + rng.random() * 10:.1f},link_alarms=0i,dropped=0i {t}"
                    )
                if n.kind == "restroom":
                    for stall in ("1", "2"):
                        for k in range(6):
                            occ = rng.randrange(0, 300) if busy else rng.randrange(0, 20)
                            out.append(
                                f"occupancy,{tags},sensor=door-{stall},stall={stall} "
                                f"occupied_s={occ}.0,motion_count={rng.randrange(0, 9)}i "
                                f"{base + k * 600 + 11}"
                            )
                    if busy:
                        for k in range(rng.randrange(3, 6)):
                            t = base + k * 700 + 13
                            out.append(
                                f"visit,{tags},sensor=door-1,stall=1 "
                                f'event="start",occupied=true {t}'
                            )
                            out.append(
                                f'visit,{tags},sensor=door-1,stall=1 event="end",occupied=false,'
                                f"duration_s={rng.randrange(60, 400)}.0 {t + 400}"
                            )
                        if rng.random() < 0.04:
                            out.append(
                                f"help_call,{tags},sensor=help-button pressed=true {base + 1700}"
                            )
                        if rng.random() < 0.2:
                            out.append(
                                f"health_check,{tags},sensor=health-scale,device=scale "
                                f"weight_kg={50 + rng.random() * 40:.1f} {base + 1900}"
                            )
                elif n.kind == "vehicle" and busy and rng.random() < 0.7:
                    t = base + 600
                    out.append(f'trip,{tags} event="start" {t}')
                    for k in range(6):
                        out.append(
                            f"ride,{tags} speed_mps={2 + rng.random() * 4:.2f},"
                            f"battery_pct={20 + rng.random() * 80:.1f},trip_distance_m={k * 300}.0 "
                            f"{t + 60 + k * 120}"
                        )
                    out.append(
                        f'trip,{tags} event="end",distance_m={rng.randrange(500, 4000)}.0,'
                        f"duration_s={rng.randrange(300, 1500)}.0 {t + 900}"
                    )
                elif n.kind == "station":
                    for vehicle in (1, 2, 3):
                        for k in range(12):
                            out.append(
                                f"parked_vehicle,{tags},sensor=ble-adv,vehicle={vehicle} "
                                f"odometer_m={vehicle * 1000}.0,soc_pct={rng.randrange(10, 100)}.0,"
                                f"in_use=false {base + k * 300 + 17}"
                            )
                    if busy and rng.random() < 0.5:
                        out.append(
                            f"vehicle_arrived,{tags},sensor=ble-adv,vehicle=1 odometer_m=1000.0 "
                            f"{base + 1200}"
                        )
                elif n.kind == "kiosk":
                    sessions = rng.randrange(0, 12) if busy else 0
                    cells = [
                        ("sessions", "all", sessions),
                        ("consultation", "requested", sessions // 4),
                    ]
                    cells += [("language", lang, sessions // 3) for lang in ("ja", "en", "vi")]
                    cells += [
                        ("tier", t, sessions // 5) for t in ("red", "yellow", "green", "white")
                    ]
                    cells += [
                        ("info_category", c, sessions // 2)
                        for c in (
                            "health",
                            "childcare",
                            "disaster",
                            "elderly",
                            "foreign",
                            "waste",
                            "disability",
                            "money",
                            "housing",
                            "work",
                            "school",
                        )
                    ]
                    for dimension, value, count in cells:
                        if count >= 5:
                            out.append(
                                f"kiosk_usage,{tags},dimension={dimension},value={value} "
                                f'count={count}i,count_text="{count}" {base}'
                            )
                        else:
                            out.append(
                                f"kiosk_usage,{tags},dimension={dimension},value={value} "
                                f'count_text="<5" {base}'
                            )
            out.append(
                f"fleet_state,node={n.id},trial={n.trial},site={n.site},kind={n.kind} "
                f'software="0.{1 + day // 90}.0",stream="{stream[n.id]}" '
                f"{int((start + timedelta(days=day)).timestamp()) + 5}"
            )
        yield out


def now_hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
