"""What `stack apply` would change, and what it refuses."""

from __future__ import annotations

from opsflow.messages import InstanceView
from opsflow.plan import conflicts, plan_stack
from opsflow.spec import StackSpec
from opsflow.status import InstanceStatus


def spec(web: list[str], db: list[str] | None = None, greeting: str = "hi") -> StackSpec:
    layers = [{"name": "web", "instances": [{"hostname": h} for h in web]}]
    if db is not None:
        layers.append({"name": "db", "instances": [{"hostname": h} for h in db]})
    return StackSpec.model_validate(
        {"name": "shop", "custom_json": {"g": greeting}, "layers": layers}
    )


def view(hostname: str, layer: str, status: InstanceStatus, from_file: bool = True) -> InstanceView:
    return InstanceView(hostname=hostname, layers=[layer], status=status, from_file=from_file)


def test_new_stack_creates_everything() -> None:
    plan = plan_stack(None, {}, spec(["web1", "web2"], ["db1"]))
    assert plan.changes[0] == "create stack shop (provider local)"
    assert plan.create_instances == {"web1": ["web"], "web2": ["web"], "db1": ["db"]}
    assert not plan.delete_instances


def test_same_file_on_an_online_stack_changes_nothing() -> None:
    current = spec(["web1"])
    instances = {"web1": view("web1", "web", InstanceStatus.ONLINE)}
    assert plan_stack(current, instances, spec(["web1"])).empty


def test_removed_instance_is_deleted_but_cli_added_ones_stay() -> None:
    current = spec(["web1", "web2"])
    instances = {
        "web1": view("web1", "web", InstanceStatus.ONLINE),
        "web2": view("web2", "web", InstanceStatus.ONLINE),
        "extra": view("extra", "web", InstanceStatus.ONLINE, from_file=False),
    }
    plan = plan_stack(current, instances, spec(["web1"], greeting="hello"))
    assert plan.delete_instances == ["web2"]
    assert "change stack custom_json" in plan.changes
    assert "stop and delete instance web2" in plan.changes


def test_stopped_or_failed_declared_instances_are_started_again() -> None:
    current = spec(["web1", "web2"])
    instances = {
        "web1": view("web1", "web", InstanceStatus.STOPPED),
        "web2": view("web2", "web", InstanceStatus.SETUP_FAILED),
    }
    assert plan_stack(current, instances, current).restart_instances == ["web1", "web2"]


def test_moving_a_running_instance_between_layers_is_a_conflict() -> None:
    current = spec(["web1"], [])
    instances = {"web1": view("web1", "web", InstanceStatus.ONLINE)}
    problems = conflicts(current, instances, spec([], ["web1"]))
    assert problems == [
        "layers: instance 'web1' is online: stop web1 first to change its layers (web -> db)"
    ]


def multi(layers: list[str], nested: bool = False) -> StackSpec:
    """web1 in `layers`: nested under its one layer, or in the stack-level list."""
    base: list[dict[str, object]] = [{"name": "app"}, {"name": "memcached"}]
    stack: dict[str, object] = {"name": "shop", "layers": base}
    if nested:
        base[0]["instances"] = [{"hostname": "web1"}]
    else:
        stack["instances"] = [{"hostname": "web1", "layers": layers}]
    return StackSpec.model_validate(stack)


def test_a_new_instance_in_two_layers_is_created_in_both() -> None:
    plan = plan_stack(None, {}, multi(["app", "memcached"]))
    assert plan.create_instances == {"web1": ["app", "memcached"]}
    assert "add instance web1 to layers app, memcached and start it" in plan.changes


def test_a_stopped_instance_joining_a_layer_is_a_shown_change() -> None:
    current = multi(["app"], nested=True)
    stopped = {"web1": InstanceView(hostname="web1", layers=["app"], status=InstanceStatus.STOPPED)}
    desired = multi(["app", "memcached"])
    assert conflicts(current, stopped, desired) == []
    plan = plan_stack(current, stopped, desired)
    assert plan.relayer_instances == {"web1": ["app", "memcached"]}
    assert "change instance web1 layers app -> app, memcached" in plan.changes
    assert plan.restart_instances == ["web1"]  # started again, now in both layers
    # The same layers in another order is a change too: recipes run in that order.
    stopped["web1"].layers = ["memcached", "app"]
    assert plan_stack(current, stopped, desired).relayer_instances == {"web1": ["app", "memcached"]}


def test_a_running_instance_cannot_change_its_layers() -> None:
    current = multi(["app"], nested=True)
    online = {"web1": InstanceView(hostname="web1", layers=["app"], status=InstanceStatus.ONLINE)}
    assert conflicts(current, online, multi(["app", "memcached"])) == [
        "layers: instance 'web1' is online: stop web1 first to change its layers "
        "(app -> app, memcached)"
    ]
    # Unchanged membership, nested or stack-level, is no conflict and no change.
    both = {
        "web1": InstanceView(
            hostname="web1", layers=["app", "memcached"], status=InstanceStatus.ONLINE
        )
    }
    assert conflicts(multi(["app", "memcached"]), both, multi(["app", "memcached"])) == []
    assert plan_stack(multi(["app", "memcached"]), both, multi(["app", "memcached"])).empty


def test_a_cli_added_instance_the_file_puts_in_other_layers_is_a_conflict() -> None:
    added = {
        "web1": InstanceView(
            hostname="web1", layers=["app"], status=InstanceStatus.STOPPED, from_file=False
        )
    }
    assert conflicts(multi(["app"]), added, multi(["app", "memcached"])) == [
        "layers: instance 'web1' exists in layer(s) app; the file puts it in app, memcached"
    ]


def test_removing_a_layer_that_holds_cli_added_instances_is_a_conflict() -> None:
    current = spec(["web1"], ["db1"])
    instances = {"extra": view("extra", "db", InstanceStatus.ONLINE, from_file=False)}
    assert (
        "layer 'db' is removed but still has instance 'extra'"
        in conflicts(current, instances, spec(["web1"]))[0]
    )


def scaled(instances: list[dict[str, object]]) -> StackSpec:
    return StackSpec.model_validate(
        {"name": "shop", "layers": [{"name": "web", "instances": instances}]}
    )


def test_time_and_load_instances_are_created_stopped_and_never_restarted_by_apply() -> None:
    hours = {"monday": "9-17"}
    desired = scaled(
        [
            {"hostname": "web1"},
            {"hostname": "t1", "scaling": "time", "schedule": hours},
            {"hostname": "l1", "scaling": "load"},
        ]
    )
    plan = plan_stack(None, {}, desired)
    assert plan.create_instances == {"web1": ["web"], "t1": ["web"], "l1": ["web"]}
    assert plan.stay_stopped == ["t1", "l1"]
    assert "add time-based instance t1 to layer web (started and stopped by its schedule)" in (
        plan.changes
    )
    stopped = {h: view(h, "web", InstanceStatus.STOPPED) for h in ("web1", "t1", "l1")}
    assert plan_stack(desired, stopped, desired).restart_instances == ["web1"]


def test_a_changed_schedule_or_scaling_kind_is_a_change() -> None:
    before = scaled([{"hostname": "t1", "scaling": "time", "schedule": {"monday": "9-17"}}])
    online = {"t1": view("t1", "web", InstanceStatus.ONLINE)}
    after = scaled([{"hostname": "t1", "scaling": "time", "schedule": {"monday": "9-18"}}])
    assert plan_stack(before, online, after).changes == ["change instance t1 schedule"]
    always = scaled([{"hostname": "t1"}])
    assert plan_stack(before, online, always).changes == [
        "change instance t1 scaling time -> always"
    ]


def registered(**hosts: dict[str, object]) -> StackSpec:
    return StackSpec.model_validate(
        {
            "name": "legacy",
            "provider": "registered",
            "layers": [
                {
                    "name": "web",
                    "instances": [
                        {"hostname": h, "ssh": {"key_file": "/k", **ssh}}
                        for h, ssh in hosts.items()
                    ],
                }
            ],
        }
    )


def test_registered_hosts_are_registered_rechecked_and_deregistered_in_plain_words() -> None:
    first = registered(web1={"host": "10.0.0.5"}, web2={"host": "10.0.0.6"})
    created = plan_stack(None, {}, first)
    assert created.changes[-2:] == [
        "register host web1 (root@10.0.0.5:22) in layer web and set it up",
        "register host web2 (root@10.0.0.6:22) in layer web and set it up",
    ]
    online = {
        h: view(h, "web", InstanceStatus.ONLINE).model_copy(update={"provider": "registered"})
        for h in ("web1", "web2")
    }
    moved = registered(web1={"host": "10.0.0.5", "port": 2222})
    changed = plan_stack(first, online, moved)
    assert changed.changes == [
        "change instance web1 ssh (the host is checked now, used from its next start)",
        "deregister host web2 (shutdown recipes; the machine keeps running)",
    ]
    assert changed.delete_instances == ["web2"]


# ---- apps, users and the Chef version --------------------------------------------------

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJfbgLJp1DHYWFqDFSaOZ7zvrxVtSL5tKB0rAJvxgDZ1 a@b"
SEALED = {"secure": True, "ciphertext": "v2.first"}
RUNNING = {"web1": view("web1", "web", InstanceStatus.ONLINE)}


def with_extras(**extra: object) -> StackSpec:
    raw = spec(["web1"]).model_dump(mode="json")
    return StackSpec.model_validate({**raw, **extra})


def test_apps_added_removed_and_changed_are_shown_secure_values_masked() -> None:
    current = with_extras(
        apps=[
            {"name": "store", "layers": ["web"], "environment": {"DB": SEALED}},
            {"name": "blog", "layers": ["web"]},
        ]
    )
    resealed = {"secure": True, "ciphertext": "v2.second"}
    desired = with_extras(
        apps=[
            {
                "name": "store",
                "layers": ["web"],
                "environment": {"DB": resealed},
                "domains": ["shop.example.com"],
            },
            {"name": "admin", "layers": ["web"]},
        ]
    )
    plan = plan_stack(current, RUNNING, desired)
    assert "add app admin" in plan.changes
    assert "remove app blog" in plan.changes
    assert "change app store domains (used from its next deploy)" in plan.changes
    same = with_extras(apps=[{"name": "store", "layers": ["web"], "environment": {"DB": resealed}}])
    before = with_extras(apps=[{"name": "store", "layers": ["web"], "environment": {"DB": SEALED}}])
    assert plan_stack(before, RUNNING, same).empty, "a secret sealed anew is not a change"


def test_user_changes_are_shown_and_make_a_configure_round() -> None:
    alice = {"name": "alice", "ssh_public_key": KEY}
    current = with_extras(users=[alice, {"name": "bob", "ssh_public_key": KEY}])
    desired = with_extras(users=[{**alice, "sudo": True}, {"name": "carol", "ssh_public_key": KEY}])
    plan = plan_stack(current, RUNNING, desired)
    assert plan.changes == [
        "add user carol",
        "remove user bob (from the instances where opsflow created it)",
        "change user alice sudo",
    ]
    assert plan.converge_users
    assert not plan_stack(current, RUNNING, current).converge_users


def test_a_new_chef_version_is_shown() -> None:
    plan = plan_stack(with_extras(), RUNNING, with_extras(chef={"version": "12"}))
    assert plan.changes == ["change stack chef version 11.10 -> 12"]
