"""The fleet manifest: the shipped one loads; a bad one is one error naming every problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.errors import ConfigError
from cloud.fleet import Assignment, load_fleet

SHIPPED = Path(__file__).parents[2] / "firmware_config" / "fleet.toml"


def test_shipped_manifest_assigns_every_node_its_trial_and_site() -> None:
    fleet = load_fleet(SHIPPED)
    assert fleet.assignment("mv-04") == Assignment(
        trial="micro-mobility", site="kenkyugakuen-stn-parking", kind="vehicle"
    )
    assert fleet.assignment("rr-01") == Assignment(
        trial="restroom-health", site="tsukuba-stn-restroom", kind="restroom"
    )
    assert {n.id for n in fleet.nodes} >= {"rr-01", "st-02", "ks-02"}


def test_node_missing_from_manifest_has_no_assignment() -> None:
    assert load_fleet(SHIPPED).assignment("rr-99") is None


def test_bad_manifest_names_each_problem_in_one_error(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(
        """
[[trials]]
id = "t1"
name = "Trial one"

[[trials]]
id = "t1"
name = "Trial one again"

[[sites]]
id = "s1"
name = "Site one"
trial = "t1"

[[sites]]
id = "s2"
name = "Site two"
trial = "t-missing"

[[nodes]]
id = "n-01"
kind = "restroom"
trial = "t1"
site = "s-missing"

[[nodes]]
id = "n-02"
kind = "restroom"
trial = "t2"
site = "s1"
""",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        load_fleet(path)
    message = str(err.value)
    assert "trial 't1' is listed more than once" in message
    assert "site 's2': trial 't-missing' is not in [[trials]]" in message
    assert "node 'n-01': site 's-missing' is not in [[sites]]" in message
    assert "node 'n-02': trial 't2' is not in [[trials]]" in message


def test_bad_field_values_are_named_by_where_they_are(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(
        """
[[trials]]
id = "t1"
name = "T"
colour = "red"

[[sites]]
id = "s1"
name = "S"
trial = "t1"

[[nodes]]
id = "Bad Node"
kind = "toaster"
trial = "t1"
site = "s1"
""",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        load_fleet(path)
    message = str(err.value)
    assert "trials[0].colour: unknown key" in message
    assert "nodes[0].id:" in message
    assert "'Bad Node'" in message
    assert "nodes[0].kind:" in message


def test_node_placed_at_a_site_of_another_trial_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(
        """
trials = [{id = "a", name = "A"}, {id = "b", name = "B"}]
sites = [{id = "s", name = "S", trial = "a"}]
nodes = [{id = "n-1", kind = "kiosk", trial = "b", site = "s"}]
""",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="site 's' belongs to trial 'a', not 'b'"):
        load_fleet(path)


def test_unreadable_or_broken_manifest_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read it"):
        load_fleet(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[[nodes]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_fleet(broken)
