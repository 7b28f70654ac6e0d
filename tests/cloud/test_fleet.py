"""The fleet manifest: the shipped one loads; a bad one is one error naming every problem."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cloud.errors import ConfigError
from cloud.fleet import Assignment, load_fleet
from protocol.limits import DEFAULT_BUDGET, SERVICE_USER

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


@pytest.mark.parametrize("name", ["collector", "collector-1", "collector-a2", "consult"])
def test_a_node_named_like_a_cloud_service_user_is_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(
        f"""
trials = [{{id = "t", name = "T"}}]
sites = [{{id = "s", name = "S", trial = "t"}}]
nodes = [{{id = "{name}", kind = "kiosk", trial = "t", site = "s"}}]
""",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        load_fleet(path)
    assert f"nodes[0].id: {name!r} is reserved" in str(err.value)
    assert "\n" not in str(err.value)


def test_names_that_only_start_like_a_service_are_nodes(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(
        """
trials = [{id = "t", name = "T"}]
sites = [{id = "s", name = "S", trial = "t"}]
nodes = [{id = "collectors", kind = "kiosk", trial = "t", site = "s"},
         {id = "consultant-1", kind = "kiosk", trial = "t", site = "s"}]
""",
        encoding="utf-8",
    )
    assert load_fleet(path).assignment("collectors") is not None


def test_every_user_the_shipped_acl_grants_more_is_a_reserved_node_id() -> None:
    acl = (SHIPPED.parent / "mosquitto" / "acl").read_text(encoding="utf-8")
    users = re.findall(r"^user (\S+)$", acl, flags=re.MULTILINE)

    assert users
    assert all(SERVICE_USER.fullmatch(u) for u in users), users


def test_shipped_manifest_budgets_stations_for_their_vehicles() -> None:
    fleet = load_fleet(SHIPPED)

    assert fleet.budget("rr-01") == DEFAULT_BUDGET
    assert fleet.budget("st-01").tag_values > DEFAULT_BUDGET.tag_values
    assert fleet.budget("st-01").series > DEFAULT_BUDGET.series


def test_a_bad_budget_is_named_by_where_it_is(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(
        """
[budgets]
series = 0
[budgets.kind.toaster]
series = 5
[budgets.kind.kiosk]
sereis = 5
""",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        load_fleet(path)
    message = str(err.value)
    assert "budgets.series: Input should be greater than or equal to 1" in message
    assert "budgets.kind.toaster.[key]" in message
    assert "budgets.kind.kiosk.sereis: unknown key" in message
