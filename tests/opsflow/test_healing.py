"""The healing decisions: counting, declaring lost, healing, backoff, giving up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opsflow.events import EventKind
from opsflow.healing import (
    GAUGES_PERIOD,
    HEALING_EVENTS,
    Action,
    HealingState,
    InstanceHealth,
    assess,
    count_event,
    due_for_check,
    gauges_due,
    gauges_sent,
    heal_finished,
    heal_started,
    take_gauges,
    to_recheck,
    to_watch,
)
from opsflow.messages import (
    HealingConfig,
    InstanceView,
    LayerProbeReport,
    ProbeOutcome,
    SshEndpoint,
)
from opsflow.spec import HealingPolicySpec, LayerHealthCheckSpec, Provider
from opsflow.status import InstanceStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SSH = SshEndpoint(host="127.0.0.1", port=2200, user="root", key_file="/k", host_key="k A")


def state(threshold: int = 2, max_heals: int = 3, backoff: float = 10) -> HealingState:
    config = HealingConfig(
        check=LayerHealthCheckSpec(unhealthy_threshold=threshold, grace_period=30),
        policy=HealingPolicySpec(max_heals=max_heals, window=3600, backoff=backoff),
    )
    return HealingState(stack="s", layer="web", config=config)


def view(
    host: str = "w1",
    status: InstanceStatus = InstanceStatus.ONLINE,
    at: datetime = T0,
    provider: Provider = Provider.LOCAL,
) -> InstanceView:
    return InstanceView(
        hostname=host, layers=["web"], status=status, ssh=SSH, updated_at=at, provider=provider
    )


def report(views: list[InstanceView], dead: set[str]) -> LayerProbeReport:
    outcomes = [
        ProbeOutcome(
            hostname=v.hostname,
            healthy=v.hostname not in dead,
            reachable=v.hostname not in dead,
            detail="SSH failed: connection refused" if v.hostname in dead else "ok",
        )
        for v in views
    ]
    return LayerProbeReport(instances=views, outcomes=outcomes)


def actions(decisions: list) -> list[tuple[str, Action]]:  # type: ignore[type-arg]
    return [(d.hostname, d.action) for d in decisions]


def test_only_online_instances_past_their_grace_period_are_checked() -> None:
    check = LayerHealthCheckSpec(grace_period=30)
    assert due_for_check(view(at=T0), T0 + timedelta(seconds=30), check)
    assert not due_for_check(view(at=T0), T0 + timedelta(seconds=29), check)
    for status in (InstanceStatus.RUNNING_SETUP, InstanceStatus.STOPPING, InstanceStatus.BOOTING):
        assert not due_for_check(view(status=status), T0 + timedelta(hours=1), check)


def test_threshold_consecutive_failures_declare_lost_then_heal_and_one_success_resets() -> None:
    s, views, now = state(threshold=3), [view("w1"), view("w2")], T0 + timedelta(minutes=1)
    assert assess(s, report(views, {"w1"}), now) == []
    assert assess(s, report(views, set()), now) == []  # a good check resets the count
    assert assess(s, report(views, {"w1"}), now) == []
    assert assess(s, report(views, {"w1"}), now) == []
    decisions = assess(s, report(views, {"w1"}), now)
    assert actions(decisions) == [("w1", Action.DETECTED), ("w1", Action.HEAL)]
    assert decisions[0].unreachable and "connection refused" in (decisions[0].detail or "")
    assert "3 health check(s) in a row" in decisions[0].message


def test_a_heal_in_flight_is_not_repeated_and_success_forgets_the_loss() -> None:
    s, now = state(), T0 + timedelta(minutes=1)
    lost = [view("w1")]
    assess(s, report(lost, {"w1"}), now)
    assert actions(assess(s, report(lost, {"w1"}), now))[-1] == ("w1", Action.HEAL)
    heal_started(s.health["w1"], "heal-1", now)
    booting = [view("w1", InstanceStatus.BOOTING, now)]
    assert assess(s, LayerProbeReport(instances=booting, outcomes=[]), now) == []
    heal_finished(s.health["w1"], ok=True, now=now, config=s.config)
    assert s.health["w1"].lost_at is None and len(s.health["w1"].heals) == 1


def test_failed_heals_back_off_exponentially_then_give_up_after_max_heals() -> None:
    s = state(max_heals=2, backoff=10)
    now = T0 + timedelta(minutes=1)
    assess(s, report([view()], {"w1"}), now)
    assert actions(assess(s, report([view()], {"w1"}), now))[-1] == ("w1", Action.HEAL)
    heal_started(s.health["w1"], "heal-1", now)
    next_try = heal_finished(s.health["w1"], ok=False, now=now, config=s.config)
    assert next_try == now + timedelta(seconds=10)
    failed = LayerProbeReport(instances=[view(status=InstanceStatus.SETUP_FAILED)], outcomes=[])
    assert assess(s, failed, now + timedelta(seconds=9)) == []  # backing off
    again = assess(s, failed, now + timedelta(seconds=10))
    assert actions(again) == [("w1", Action.HEAL)]
    heal_started(s.health["w1"], "heal-2", now + timedelta(seconds=10))
    next_try = heal_finished(s.health["w1"], False, now + timedelta(seconds=10), s.config)
    assert next_try == now + timedelta(seconds=30)  # doubled
    gave_up = assess(s, failed, now + timedelta(seconds=40))
    assert actions(gave_up) == [("w1", Action.GIVE_UP)] and "max_heals 2" in gave_up[0].message
    assert assess(s, failed, now + timedelta(seconds=50)) == []  # said once


def test_heals_older_than_the_window_no_longer_count() -> None:
    s = state(max_heals=1)
    now = T0 + timedelta(minutes=1)
    assess(s, report([view()], {"w1"}), now)
    assess(s, report([view()], {"w1"}), now)
    heal_started(s.health["w1"], "heal-1", now)
    heal_finished(s.health["w1"], ok=True, now=now, config=s.config)
    later = now + timedelta(minutes=30)
    back = [view(at=now + timedelta(seconds=5))]
    assess(s, report(back, {"w1"}), later)
    assert actions(assess(s, report(back, {"w1"}), later)) == [
        ("w1", Action.DETECTED),
        ("w1", Action.GIVE_UP),
    ]
    s2 = state(max_heals=1)
    s2.health = {"w1": s.health["w1"].model_copy(deep=True)}
    s2.health["w1"].told = False
    past_window = now + timedelta(hours=1, seconds=1)
    lost = LayerProbeReport(instances=[view(status=InstanceStatus.CONNECTION_LOST)], outcomes=[])
    assert actions(assess(s2, lost, past_window)) == [("w1", Action.HEAL)]


def test_an_instance_stopped_on_purpose_is_never_healed() -> None:
    s, now = state(), T0 + timedelta(minutes=1)
    assess(s, report([view()], {"w1"}), now)  # one failure, then someone stops it
    stopping = LayerProbeReport(instances=[view(status=InstanceStatus.STOPPING)], outcomes=[])
    assert assess(s, stopping, now) == []
    assert "w1" not in s.health
    stopped = LayerProbeReport(instances=[view(status=InstanceStatus.STOPPED)], outcomes=[])
    assert assess(s, stopped, now + timedelta(minutes=5)) == []


def test_a_registered_instance_is_not_replaced_and_comes_back_when_it_answers() -> None:
    s, now = state(), T0 + timedelta(minutes=1)
    host = [view(provider=Provider.REGISTERED)]
    assess(s, report(host, {"w1"}), now)
    decisions = assess(s, report(host, {"w1"}), now)
    assert actions(decisions) == [("w1", Action.DETECTED), ("w1", Action.NOT_REPLACEABLE)]
    assert "registered" in decisions[1].message
    lost = [view(status=InstanceStatus.CONNECTION_LOST, provider=Provider.REGISTERED)]
    assert assess(s, LayerProbeReport(instances=lost, outcomes=[]), now) == []  # said once
    assert to_recheck(s, lost) == ["w1"]
    assert actions(assess(s, report(lost, set()), now)) == [("w1", Action.RECOVERED)]
    assert s.health["w1"].lost_at is None


def test_instances_gone_from_the_layer_are_forgotten() -> None:
    s, now = state(), T0 + timedelta(minutes=1)
    assess(s, report([view("w1"), view("w2")], {"w2"}), now)
    assess(s, report([view("w1")], set()), now)
    assert set(s.health) == {"w1"}


# ---- gauges ----------------------------------------------------------------------------


def ec2_state() -> HealingState:
    s = state()
    s.config = s.config.model_copy(update={"region": "us-east-1"})
    return s


def test_gauges_are_due_at_once_then_once_per_period_and_never_without_a_region() -> None:
    s = ec2_state()
    assert gauges_due(s, T0)
    take_gauges(s, [], T0)
    assert not gauges_due(s, T0 + GAUGES_PERIOD - timedelta(seconds=1))
    assert gauges_due(s, T0 + GAUGES_PERIOD)
    local = state()
    assert not gauges_due(local, T0)
    assert not gauges_due(local, T0 + timedelta(hours=1))


def test_gauges_count_the_layer_as_the_round_saw_it() -> None:
    s = ec2_state()
    views = [
        view("w1"),
        view("w2", status=InstanceStatus.CONNECTION_LOST),
        view("w3", status=InstanceStatus.STOPPED),
    ]
    gauges = take_gauges(s, views, T0)
    assert (gauges.stack, gauges.layer, gauges.region) == ("s", "web", "us-east-1")
    assert (gauges.online, gauges.total, gauges.healing_events) == (1, 3, 0)
    assert s.gauges_at == T0


def test_every_decision_and_heal_end_counts_as_a_healing_event_and_nothing_else() -> None:
    s = ec2_state()
    for kind in sorted(HEALING_EVENTS):
        count_event(s, kind)
    count_event(s, EventKind.GAUGES_FAILED)
    count_event(s, EventKind.INSTANCE_STATUS)
    assert s.healing_events == len(HEALING_EVENTS) == 8
    assert {a.value for a in Action} | {"healed", "heal_failed", "heal_skipped"} == HEALING_EVENTS
    local = state()
    count_event(local, EventKind.HEAL_STARTED)
    assert local.healing_events == 0  # no gauges, nothing to count for


def test_a_publish_takes_its_events_off_the_count_and_keeps_those_counted_meanwhile() -> None:
    s = ec2_state()
    for _ in range(3):
        count_event(s, EventKind.HEAL_STARTED)
    gauges = take_gauges(s, [view("w1")], T0)
    assert gauges.healing_events == 3
    count_event(s, EventKind.HEALED)  # while the publish was in flight
    assert not gauges_sent(s, gauges, None)
    assert s.healing_events == 1
    assert take_gauges(s, [], T0 + GAUGES_PERIOD).healing_events == 1


def test_a_failed_publish_keeps_the_count_and_is_said_once() -> None:
    s = ec2_state()
    count_event(s, EventKind.HEALTH_DETECTED)
    first = take_gauges(s, [], T0)
    assert gauges_sent(s, first, "AWS refused PutMetricData: AccessDenied: no")
    assert s.healing_events == 1 and s.gauges_error is not None
    assert not gauges_due(s, T0 + timedelta(seconds=5))  # the next try waits a period too
    again = take_gauges(s, [], T0 + GAUGES_PERIOD)
    assert again.healing_events == 1
    assert not gauges_sent(s, again, "AWS refused PutMetricData: AccessDenied: no")  # said
    assert not gauges_sent(s, again, None)
    assert s.healing_events == 0
    assert s.gauges_error is None
    assert gauges_sent(s, again, "throttled")  # failing again after a success: said again


def test_gauge_fields_default_so_old_states_and_configs_still_decode() -> None:
    old = {
        "stack": "s",
        "layer": "web",
        "config": {"check": {}, "policy": {}},
        "health": {},
        "heal_seq": 2,
        "stopping": False,
    }
    decoded = HealingState.model_validate(old)
    assert decoded.config.region is None
    assert (decoded.gauges_at, decoded.healing_events, decoded.gauges_error) == (None, 0, None)


def test_a_gone_worker_makes_its_instances_lost_at_once_even_if_they_marked_themselves() -> None:
    s, now = state(threshold=3), T0 + timedelta(minutes=1)
    views = [view("w1"), view("w2", status=InstanceStatus.CONNECTION_LOST), view("w3")]
    gone = "worker opsflow@b is gone: nothing has run its tasks for 2m"
    outcomes = [
        ProbeOutcome(hostname=h, healthy=False, reachable=False, detail=gone, worker_gone=True)
        for h in ("w1", "w2")
    ]
    decisions = assess(s, LayerProbeReport(instances=views, outcomes=outcomes), now)
    assert actions(decisions) == [
        ("w1", Action.DETECTED),
        ("w2", Action.DETECTED),
        ("w1", Action.HEAL),
        ("w2", Action.HEAL),
    ]
    assert all(d.worker_gone and d.unreachable for d in decisions[:2])
    assert decisions[0].message == f"w1: {gone}; connection lost"


# ---- the watch ----------------------------------------------------------------------------


def dropped(views: list[InstanceView], host: str) -> LayerProbeReport:
    """What a watch returns: the layer's view, and the one instance it lost."""
    lost = ProbeOutcome(
        hostname=host,
        healthy=False,
        reachable=False,
        detail="root@127.0.0.1:2200: SSH keepalive unanswered for 3s",
        decisive=True,
    )
    return LayerProbeReport(instances=views, outcomes=[lost])


def test_a_loss_the_watch_saw_is_decisive_at_once_and_healed() -> None:
    s, now = state(threshold=3), T0 + timedelta(minutes=5)
    decisions = assess(s, dropped([view("w1"), view("w2")], "w1"), now)
    assert actions(decisions) == [("w1", Action.DETECTED), ("w1", Action.HEAL)]
    assert decisions[0].unreachable and not decisions[0].worker_gone
    assert decisions[0].message == (
        "w1: root@127.0.0.1:2200: SSH keepalive unanswered for 3s: connection lost"
    )
    # Seen again (a second watch, or the same loss) while it is lost: nothing new.
    heal_started(s.health["w1"], "heal-w1-1", now)
    again = assess(s, dropped([view("w1", InstanceStatus.CONNECTION_LOST), view("w2")], "w1"), now)
    assert again == []


def test_a_dropped_connection_of_an_instance_no_longer_online_is_no_loss() -> None:
    s, now = state(), T0 + timedelta(minutes=5)
    for status in (InstanceStatus.STOPPING, InstanceStatus.RUNNING_SETUP, InstanceStatus.BOOTING):
        assert assess(s, dropped([view("w1", status)], "w1"), now) == []
        assert s.health.get("w1") is None or s.health["w1"].lost_at is None


def test_a_registered_instance_cut_off_is_not_replaced_and_recovers_once() -> None:
    s, now = state(), T0 + timedelta(minutes=5)
    online = view("r1", provider=Provider.REGISTERED)
    decisions = assess(s, dropped([online], "r1"), now)
    assert actions(decisions) == [("r1", Action.DETECTED), ("r1", Action.NOT_REPLACEABLE)]
    lost = view("r1", InstanceStatus.CONNECTION_LOST, provider=Provider.REGISTERED)
    assert to_recheck(s, [lost]) == ["r1"]  # the periodic check looks for it to come back
    assert to_watch(s, [lost], now) == {}
    back = assess(s, report([lost], dead=set()), now)
    assert actions(back) == [("r1", Action.RECOVERED)]  # back online: no setup, no heal
    assert assess(s, report([lost], dead=set()), now) == []  # said once


def test_the_watch_holds_the_instances_due_a_check_by_task_queue_but_not_the_lost() -> None:
    s, now = state(), T0 + timedelta(seconds=40)
    views = [
        view("w3"),
        view("w1").model_copy(update={"task_queue": "q@a"}),
        view("w2"),
        view("young", at=now),  # in its grace period
        view("setup", InstanceStatus.RUNNING_SETUP),
        view("lost"),
    ]
    s.health["lost"] = InstanceHealth(lost_at=now)  # declared lost; its status follows
    watched = to_watch(s, views, now)
    assert {q: [t.hostname for t in ts] for q, ts in watched.items()} == {
        None: ["w2", "w3"],
        "q@a": ["w1"],
    }
    assert watched[None][0].ssh == SSH
