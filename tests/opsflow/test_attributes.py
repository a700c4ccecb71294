"""The stack configuration document recipes read."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from opsflow.attributes import deep_merge, stack_configuration
from opsflow.messages import InstanceView
from opsflow.spec import StackSpec
from opsflow.status import InstanceStatus

SPEC = StackSpec.model_validate(
    {
        "name": "shop",
        "custom_json": {"shop": {"greeting": "hello", "port": 80}},
        "layers": [
            {"name": "web", "custom_json": {"shop": {"port": 8080}}},
            {"name": "db"},
        ],
    }
)


def view(hostname: str, layer: str, status: InstanceStatus = InstanceStatus.ONLINE) -> InstanceView:
    return InstanceView(
        hostname=hostname,
        layers=[layer],
        status=status,
        private_ip="127.0.0.1",
        root=f"/r/{hostname}",
    )


def test_document_has_stack_layers_instance_and_custom_json() -> None:
    instances = [
        view("web1", "web"),
        view("web2", "web", InstanceStatus.STOPPED),
        view("db1", "db"),
    ]
    doc = stack_configuration(SPEC, instances, view("web1", "web"), "configure")
    ops = doc["opsflow"]
    assert ops["stack"] == {"name": "shop", "provider": "local", "configuration_manager": "shell"}
    assert ops["activity"] == "configure"
    assert ops["instance"]["hostname"] == "web1" and ops["instance"]["root"] == "/r/web1"
    assert sorted(ops["layers"]["web"]["instances"]) == ["web1", "web2"]
    assert ops["layers"]["web"]["instances"]["web2"]["status"] == "stopped"
    assert list(ops["layers"]["db"]["instances"]) == ["db1"]
    # layer custom_json overrides the stack's, key by key
    assert doc["shop"] == {"greeting": "hello", "port": 8080}


def test_db_instance_sees_stack_custom_json_without_web_layer_override() -> None:
    doc = stack_configuration(SPEC, [], view("db1", "db"), "setup")
    assert doc["shop"] == {"greeting": "hello", "port": 80}


def test_own_view_wins_over_stale_stack_view() -> None:
    stale = view("web1", "web", InstanceStatus.BOOTING)
    fresh = view("web1", "web", InstanceStatus.RUNNING_SETUP)
    doc = stack_configuration(SPEC, [stale], fresh, "setup")
    assert doc["opsflow"]["layers"]["web"]["instances"]["web1"]["status"] == "running_setup"


def test_command_json_has_highest_precedence() -> None:
    doc = stack_configuration(SPEC, [], view("web1", "web"), "deploy", {"shop": {"port": 1}})
    assert doc["shop"]["port"] == 1


json_values = st.recursive(
    st.integers() | st.text(max_size=3) | st.booleans(),
    lambda inner: st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)


@given(
    st.dictionaries(st.text(max_size=3), json_values),
    st.dictionaries(st.text(max_size=3), json_values),
)
def test_deep_merge_keeps_every_override_leaf(
    base: dict[str, object], over: dict[str, object]
) -> None:
    merged = deep_merge(base, over)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            assert isinstance(merged[key], dict)
        else:
            assert merged[key] == value
    for key in base:
        assert key in merged
