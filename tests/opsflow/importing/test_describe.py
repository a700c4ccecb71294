"""Saved `aws opsworks describe-*` output read into one OpsWorksStack: matched by ids in any
order and subset, secrets OpsWorks filtered left out and reported, one stack at a time."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsflow.errors import SpecError
from opsflow.importing.describe import FILTERED, KINDS, read_describe
from opsflow.importing.mapping import stack_file
from opsflow.importing.model import OpsWorksStack, Report, Resource
from opsflow.spec import Provider

HERE = Path(__file__).parent / "describe"
STACK = "2f18b4cb-4de5-4429-a149-ff7da9f0d8ee"
OTHER_STACK = "7d0e1f2a-3b4c-4d5e-8f60-718293a4b5c6"
PHP = "4a2a56c8-f909-4b39-81f8-556536d20648"
WORKERS = "9c1e3b70-8d42-4f3a-a0be-3c6f0d1b2e55"
PHP2 = "1d3f6a2e-7b4c-4e59-8a0d-2f6b9c8e7d31"
WORKER1 = "5e7a9c1b-2d4f-4a6b-8c0e-1f3a5b7d9e20"
DB_ARN = "arn:aws:rds:eu-west-1:444455556666:db:shop-db"
ALICE = "arn:aws:iam::444455556666:user/alice"
BOB = "arn:aws:iam::444455556666:user/bob"
ALL = (
    "stacks", "layers", "instances", "apps", "elbs", "rds", "time-based", "load-based",
    "users", "permissions", "volumes",
)  # fmt: skip


def doc(name: str) -> tuple[str, Any]:
    path = HERE / f"{name}.json"
    return (path.name, json.loads(path.read_text()))


def docs(*names: str) -> list[tuple[str, Any]]:
    return [doc(name) for name in names]


def lines(report: Report) -> list[tuple[str, str, str]]:
    return [(line.where, line.property, line.message) for line in report.lines]


def about(report: Report, where: str, prop: str) -> list[str]:
    """The messages of the report's lines on `where` (a part of it) and `prop`."""
    return [line.message for line in report.lines if where in line.where and line.property == prop]


def by_id(resources: list[Resource], ident: str) -> Resource:
    (found,) = [resource for resource in resources if resource.id == ident]
    return found


def test_a_whole_stack_is_tied_together_by_ids() -> None:
    found, report = read_describe(docs(*ALL))

    assert found.stack.id == STACK
    assert found.stack.fields["Name"] == "Shop Production"
    assert found.stack.fields["ConfigurationManager"] == {"Name": "Chef", "Version": "11.10"}
    assert found.stack.source == f"stack Shop Production ({STACK})"
    assert [layer.id for layer in found.layers] == [PHP, WORKERS]
    assert by_id(found.layers, PHP).source == f"layer php-app ({PHP})"
    assert by_id(found.layers, PHP).fields["CustomRecipes"]["Deploy"] == ["shop::migrate"]
    assert [i.fields["Hostname"] for i in found.instances] == ["php-app1", "php-app2", "workers1"]
    assert by_id(found.instances, WORKER1).fields["LayerIds"] == [WORKERS, PHP]
    assert [app.fields["Shortname"] for app in found.apps] == ["shop"]
    assert [elb.id for elb in found.elb_attachments] == ["shop-front-elb"]
    elb = found.elb_attachments[0].fields
    assert elb["LayerId"] == PHP
    assert elb["DnsName"] == "shop-front-elb-1234567890.eu-west-1.elb.amazonaws.com"
    assert elb["Ec2InstanceIds"] == ["i-0a1b2c3d4e5f60718"]
    assert [db.id for db in found.rds_db_instances] == [DB_ARN]
    assert [volume.fields["InstanceId"] for volume in found.volumes] == [WORKER1]
    # Everything matched: the report holds only the secrets OpsWorks never printed and
    # bob, who has no permission on the stack.
    assert {line.property for line in report.lines} == {
        "CustomCookbooksSource.SshKey",
        "Attributes.MysqlRootPassword",
        "SslConfiguration.PrivateKey",
        "Environment[1].Value",
        "DbPassword",
        "Permissions",
    }


def test_time_based_schedules_merge_into_their_instance_in_cloudformation_shape() -> None:
    found, _ = read_describe(docs("instances", "time-based"))

    schedule = by_id(found.instances, PHP2).fields["TimeBasedAutoScaling"]
    assert schedule["Monday"] == {"8": "on", "9": "on", "10": "on", "11": "on", "12": "on"}
    assert schedule["Tuesday"] == {}
    assert "AutoScalingSchedule" not in by_id(found.instances, PHP2).fields
    assert "TimeBasedAutoScaling" not in by_id(found.instances, WORKER1).fields


def test_load_based_thresholds_merge_into_their_layer() -> None:
    found, _ = read_describe(docs("layers", "load-based"))

    scaling = by_id(found.layers, WORKERS).fields["LoadBasedAutoScaling"]
    assert scaling["Enable"] is True
    assert scaling["UpScaling"]["CpuThreshold"] == 80.0
    assert scaling["DownScaling"]["ThresholdsWaitTime"] == 10
    assert "LayerId" not in scaling
    assert "LoadBasedAutoScaling" not in by_id(found.layers, PHP).fields


@pytest.mark.parametrize("order", ["reversed", "rotated", "interleaved"])
def test_the_order_of_the_files_does_not_matter(order: str) -> None:
    names = list(ALL)
    shuffled = {
        "reversed": names[::-1],
        "rotated": names[5:] + names[:5],
        "interleaved": names[1::2] + names[::2],
    }[order]
    expected = read_describe(docs(*ALL))

    found, report = read_describe(docs(*shuffled))

    assert found == expected[0]
    assert sorted(lines(report)) == sorted(lines(expected[1]))


def test_secrets_opsworks_filtered_are_left_out_and_reported_one_line_each() -> None:
    found, report = read_describe(docs(*ALL))

    assert FILTERED not in json.dumps(found.model_dump())
    app = found.apps[0].fields
    assert app["Environment"] == [
        {"Key": "APP_ENV", "Value": "production", "Secure": False},
        {"Key": "DB_PASSWORD", "Secure": True},
    ]
    assert "PrivateKey" not in app["SslConfiguration"]
    assert app["SslConfiguration"]["Certificate"].startswith("-----BEGIN CERTIFICATE-----")
    assert "SshKey" not in found.stack.fields["CustomCookbooksSource"]
    assert found.stack.fields["CustomCookbooksSource"]["Revision"] == "release-7"
    assert "DbPassword" not in found.rds_db_instances[0].fields
    assert found.rds_db_instances[0].fields["DbUser"] == "shop"
    assert "MysqlRootPassword" not in by_id(found.layers, WORKERS).fields["Attributes"]
    # A null attribute is not a filtered secret: kept as printed.
    assert by_id(found.layers, PHP).fields["Attributes"]["MysqlRootPassword"] is None
    for where, prop in [
        ("app shop", "Environment[1].Value"),
        ("app shop", "SslConfiguration.PrivateKey"),
        ("stack Shop Production", "CustomCookbooksSource.SshKey"),
        ("rds shop-db", "DbPassword"),
        ("layer workers", "Attributes.MysqlRootPassword"),
    ]:
        (message,) = about(report, where, prop)
        assert "not in the files" in message


def test_a_secure_value_the_user_wrote_into_the_file_is_kept() -> None:
    name, apps = doc("apps")
    apps["Apps"][0]["Environment"][1]["Value"] = "s3cr3t"

    found, report = read_describe([doc("stacks"), (name, apps)])

    assert found.apps[0].fields["Environment"][1] == {
        "Key": "DB_PASSWORD",
        "Value": "s3cr3t",
        "Secure": True,
    }
    assert about(report, "app shop", "Environment[1].Value") == []
    assert "s3cr3t" not in report.render()


def test_without_describe_stacks_the_stack_is_built_from_its_resources() -> None:
    found, report = read_describe(docs("instances", "time-based"))

    assert found.stack == Resource(id=STACK, source=f"stack {STACK}", fields={"StackId": STACK})
    assert about(report, f"stack {STACK}", "Name") == [
        "no describe-stacks output: the stack's name and settings are not known"
    ]
    # No describe-layers output: every layer an instance names is reported, the instance kept.
    assert len(found.instances) == 3
    assert about(report, "instance workers1", "LayerIds") == [
        f"layer {WORKERS} is in none of the files",
        f"layer {PHP} is in none of the files",
    ]
    assert by_id(found.instances, WORKER1).fields["LayerIds"] == [WORKERS, PHP]


def test_a_stack_summary_gives_the_name_when_describe_stacks_is_missing() -> None:
    summary = {
        "StackSummary": {
            "StackId": STACK,
            "Name": "Shop Production",
            "Arn": f"arn:aws:opsworks:eu-west-1:444455556666:stack/{STACK}/",
            "LayersCount": 2,
            "AppsCount": 1,
            "InstancesCount": {"Online": 1, "Stopped": 2},
        }
    }

    found, report = read_describe([("summary.json", summary), doc("layers")])

    assert found.stack.fields["Name"] == "Shop Production"
    assert set(found.stack.fields) == {"StackId", "Name", "Arn"}
    assert about(report, "stack Shop Production", "StackId") == [
        "no describe-stacks output: only the stack summary's name and ARN are known"
    ]


def test_an_instance_naming_an_unknown_layer_is_kept_and_reported() -> None:
    name, instances = doc("instances")
    instances["Instances"][0]["LayerIds"].append("0f0f0f0f-dead-4bee-8f00-000000000000")

    found, report = read_describe([doc("stacks"), doc("layers"), (name, instances)])

    assert len(found.instances[0].fields["LayerIds"]) == 2
    assert about(report, "instance php-app1", "LayerIds") == [
        "layer 0f0f0f0f-dead-4bee-8f00-000000000000 is in none of the files"
    ]
    assert about(report, "instance workers1", "LayerIds") == []


def test_resources_of_another_stack_are_reported_and_left_out() -> None:
    layers_file, layers = doc("layers")
    layers["Layers"][1]["StackId"] = OTHER_STACK
    elbs_file, elbs = doc("elbs")
    elbs["ElasticLoadBalancers"].append(
        {"ElasticLoadBalancerName": "other-elb", "StackId": OTHER_STACK, "LayerId": WORKERS}
    )

    found, report = read_describe(
        [doc("stacks"), (layers_file, layers), doc("load-based"), (elbs_file, elbs)]
    )

    assert [layer.id for layer in found.layers] == [PHP]
    assert [elb.id for elb in found.elb_attachments] == ["shop-front-elb"]
    assert about(report, f"layer workers ({WORKERS})", "StackId") == [
        f"in stack {OTHER_STACK}, not {STACK}; left out (one stack at a time)"
    ]
    assert about(report, "elb other-elb", "StackId") == [
        f"in stack {OTHER_STACK}, not {STACK}; left out (one stack at a time)"
    ]
    # The load-based thresholds of the left-out layer go with it.
    assert about(report, f"load-based scaling of layer {WORKERS}", "LayerId") == [
        "the layer is in another stack; left out"
    ]


def test_scaling_for_an_instance_or_layer_in_no_file_is_reported() -> None:
    found, report = read_describe(docs("stacks", "time-based", "load-based"))

    assert found.instances == [] and found.layers == []
    assert about(report, f"time-based scaling of instance {PHP2}", "InstanceId") == [
        f"instance {PHP2} is in none of the files; left out"
    ]
    assert about(report, f"load-based scaling of layer {WORKERS}", "LayerId") == [
        f"layer {WORKERS} is in none of the files; left out"
    ]


def test_an_rds_data_source_missing_from_the_files_is_reported() -> None:
    found, report = read_describe(docs("stacks", "apps"))

    assert found.apps[0].fields["DataSources"][0]["Arn"] == DB_ARN
    (message,) = about(report, "app shop", "DataSources[0].Arn")
    assert DB_ARN in message
    _, with_rds = read_describe(docs("stacks", "apps", "rds"))
    assert about(with_rds, "app shop", "DataSources[0].Arn") == []


def test_users_are_the_stacks_by_its_permissions_which_they_carry() -> None:
    found, report = read_describe(docs("stacks", "users", "permissions"))

    (alice,) = found.users
    assert alice.id == ALICE
    assert alice.source == f"user alice ({ALICE})"
    assert alice.fields["SshUsername"] == "alice"
    assert alice.fields["SshPublicKey"].startswith("ssh-ed25519 ")
    assert (alice.fields["AllowSsh"], alice.fields["AllowSudo"]) == (True, True)
    assert alice.fields["Level"] == "manage"
    assert about(report, "user bob", "Permissions") == ["no permission on this stack; left out"]


def test_without_permissions_every_user_profile_is_kept_and_that_is_reported() -> None:
    found, report = read_describe(docs("stacks", "users"))

    assert [user.id for user in found.users] == [ALICE, BOB]
    assert "AllowSudo" not in found.users[0].fields
    (message,) = about(report, "UserProfiles", "Permissions")
    assert message.startswith("no describe-permissions output")


def test_a_permission_without_a_profile_makes_a_user_other_stacks_are_reported() -> None:
    permissions = {
        "Permissions": [
            {"StackId": STACK, "IamUserArn": BOB, "AllowSsh": True, "AllowSudo": False},
            {"StackId": OTHER_STACK, "IamUserArn": BOB, "AllowSsh": True, "AllowSudo": True},
        ]
    }

    found, report = read_describe([doc("stacks"), ("perms.json", permissions)])

    (bob,) = found.users
    assert bob.fields == {"IamUserArn": BOB, "AllowSsh": True, "AllowSudo": False}
    assert about(report, f"user {BOB}", "SshUsername") != []
    assert about(report, f"permission of {BOB}", "StackId") == [
        f"a permission on stack {OTHER_STACK}; left out"
    ]


def test_a_volume_of_an_instance_in_no_file_is_kept_and_reported() -> None:
    found, report = read_describe(docs("stacks", "volumes"))

    assert [volume.fields["Ec2VolumeId"] for volume in found.volumes] == ["vol-0123456789abcdef0"]
    assert about(report, "volume workers1 queue", "InstanceId") == [
        f"instance {WORKER1} is in none of the files"
    ]
    _, matched = read_describe(docs("stacks", "instances", "volumes"))
    assert about(matched, "volume", "InstanceId") == []


def test_several_stacks_no_other_file_singles_out_are_refused_naming_them() -> None:
    name, stacks = doc("stacks")
    other = copy.deepcopy(stacks["Stacks"][0]) | {"StackId": OTHER_STACK, "Name": "Shop Staging"}
    stacks["Stacks"].append(other)

    with pytest.raises(SpecError) as refused:
        read_describe([(name, stacks), doc("users")])

    assert refused.value.file == "stacks.json"
    assert refused.value.problems == [
        f"several stacks: {STACK} (Shop Production), {OTHER_STACK} (Shop Staging); "
        "import one stack at a time"
    ]
    assert refused.value.exit_code == 2


def test_stacks_in_several_files_are_refused_naming_the_files() -> None:
    staging = {"Stacks": [{"StackId": OTHER_STACK, "Name": "Shop Staging"}]}

    with pytest.raises(SpecError) as refused:
        read_describe([doc("stacks"), ("staging.json", staging)])

    assert refused.value.file == "stacks.json, staging.json"


def test_resources_of_several_stacks_without_describe_stacks_are_refused() -> None:
    name, layers = doc("layers")
    layers["Layers"][1]["StackId"] = OTHER_STACK

    with pytest.raises(SpecError) as refused:
        read_describe([(name, layers)])

    assert refused.value.problems == [
        f"several stacks: {STACK}, {OTHER_STACK}; import one stack at a time"
    ]


def test_all_stacks_listed_but_the_other_files_single_one_out() -> None:
    """`aws opsworks describe-stacks` without --stack-ids lists every stack of the account;
    the layers and instances saved say which one is meant."""
    name, stacks = doc("stacks")
    stacks["Stacks"].insert(0, {"StackId": OTHER_STACK, "Name": "Shop Staging"})

    found, report = read_describe([(name, stacks), doc("layers"), doc("instances")])

    assert found.stack.id == STACK
    assert about(report, f"stack Shop Staging ({OTHER_STACK})", "StackId") == [
        "another stack; left out (one stack at a time)"
    ]


def test_files_naming_no_stack_are_refused() -> None:
    with pytest.raises(SpecError) as refused:
        read_describe(docs("users", "time-based"))

    assert refused.value.file == "users.json, time-based.json"
    assert "no stack" in refused.value.problems[0]


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ([{"StackId": STACK}], "found a list"),
        ("Stacks", "found a string"),
        ({"Deployments": []}, "found the keys: Deployments"),
        ({}, "found the keys: none"),
        ({"Layers": {"LayerId": PHP}}, "Layers: expected a list of objects"),
        ({"Layers": [PHP]}, "Layers[0]: expected an object"),
        ({"Instances": [{"Hostname": "web1"}]}, "Instances[0].InstanceId: expected"),
        ({"Apps": [{"AppId": 7}]}, "Apps[0].AppId: expected the app's id (a string); found a"),
        ({"StackSummary": [STACK]}, "StackSummary: expected an object"),
    ],
)
def test_a_file_of_an_unknown_shape_is_refused_naming_it(document: Any, problem: str) -> None:
    with pytest.raises(SpecError) as refused:
        read_describe([doc("stacks"), ("saved.json", document)])

    assert refused.value.file == "saved.json"
    (message,) = refused.value.problems
    assert problem in message
    assert str(refused.value).startswith("saved.json: ")


def test_the_expected_shapes_are_named_when_a_file_is_unknown() -> None:
    with pytest.raises(SpecError) as refused:
        read_describe([("deployments.json", {"Deployments": []})])

    message = refused.value.problems[0]
    assert "aws opsworks describe-*" in message
    assert all(kind.key in message for kind in KINDS)


def test_other_keys_beside_a_known_one_are_reported_not_read() -> None:
    saved = {"Layers": [], "NextToken": "abc", "ResponseMetadata": {"HTTPStatusCode": 200}}

    _, report = read_describe([doc("stacks"), ("layers.json", saved)])

    assert about(report, "layers.json", "NextToken") == [
        "not a key of OpsWorks describe-* output; not read"
    ]
    assert about(report, "layers.json", "ResponseMetadata") == []


def test_one_file_may_hold_several_kinds() -> None:
    merged = {"Stacks": doc("stacks")[1]["Stacks"], "Layers": doc("layers")[1]["Layers"]}

    found, _ = read_describe([("all.json", merged)])

    assert len(found.layers) == 2


def test_the_same_file_twice_is_read_once_and_a_differing_copy_is_reported() -> None:
    found, report = read_describe(docs("stacks", "layers", "layers"))
    assert len(found.layers) == 2
    assert about(report, "layer", "LayerId") == []

    _, changed = doc("layers")
    changed["Layers"][0]["EnableAutoHealing"] = False
    found, report = read_describe([doc("stacks"), doc("layers"), ("layers-later.json", changed)])

    assert by_id(found.layers, PHP).fields["EnableAutoHealing"] is True
    assert about(report, "layer php-app", "LayerId") == [
        "also in layers-later.json with other fields: the one in layers.json is kept"
    ]


def test_the_input_documents_are_not_changed() -> None:
    documents = docs(*ALL)
    before = copy.deepcopy(documents)

    found, _ = read_describe(documents)
    found.layers[0].fields["Name"] = "changed"

    assert documents == before


@pytest.mark.parametrize(
    ("instance", "kept"),
    [
        ({"InstanceId": PHP2, "LayerIds": [["a"], {"b": 1}, 3]}, [PHP2]),
        ({"InstanceId": PHP2, "LayerIds": "php-app"}, [PHP2]),
        ({"InstanceId": PHP2, "StackId": ["x"]}, []),
    ],
)
def test_odd_values_where_ids_belong_are_reported_not_crashed_on(
    instance: Any, kept: list[str]
) -> None:
    volume = {"VolumeId": "v-1", "InstanceId": {"id": PHP2}}
    app = {"AppId": "a-1", "DataSources": [{"Type": "RdsDbInstance", "Arn": [DB_ARN]}]}
    elb = {"ElasticLoadBalancerName": "e-1", "LayerId": [PHP]}
    odd = {
        "Instances": [instance],
        "Volumes": [volume],
        "Apps": [app],
        "ElasticLoadBalancers": [elb],
    }

    found, report = read_describe([doc("stacks"), ("odd.json", odd)])

    assert [i.id for i in found.instances] == kept
    assert about(report, "instance", "LayerIds" if kept else "StackId") != []
    assert about(report, "volume v-1", "InstanceId") != []
    assert about(report, "app a-1", "DataSources[0].Arn") != []
    assert about(report, "elb e-1", "LayerId") != []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    key=st.sampled_from([kind.key for kind in KINDS] + ["Other"]),
    value=json_values,
    item=st.dictionaries(
        st.sampled_from(["StackId", "LayerId", "InstanceId", "AppId", "Name", "LayerIds"]),
        json_values | st.just(STACK),
    ),
)
def test_any_json_is_read_or_refused_as_bad_input(key: str, value: Any, item: Any) -> None:
    for document in ({key: value}, {key: [item]}, {key: item}, value):
        try:
            found, _ = read_describe([doc("stacks"), ("any.json", document)])
        except SpecError as refused:
            assert refused.file in ("any.json", "stacks.json, any.json", "any.json, stacks.json")
        else:
            assert isinstance(found, OpsWorksStack)


def test_a_time_based_configuration_without_a_schedule_merges_nothing() -> None:
    empty = {"TimeBasedAutoScalingConfigurations": [{"InstanceId": PHP2}]}

    found, report = read_describe([doc("instances"), ("time.json", empty)])

    assert "TimeBasedAutoScaling" not in by_id(found.instances, PHP2).fields
    assert about(report, f"time-based scaling of instance {PHP2}", "AutoScalingSchedule") == [
        "no weekly schedule; nothing merged"
    ]


def test_several_stacks_with_odd_names_are_refused_by_their_ids() -> None:
    stacks = {"Stacks": [{"StackId": STACK, "Name": ["odd"]}, {"StackId": OTHER_STACK}]}

    with pytest.raises(SpecError) as refused:
        read_describe([("stacks.json", stacks)])

    assert refused.value.problems == [
        f"several stacks: {STACK}, {OTHER_STACK}; import one stack at a time"
    ]


def test_a_filtered_secret_is_one_report_line_once_mapped_too() -> None:
    found, report = read_describe(docs(*ALL))
    stack_file(found, report, provider=Provider.LOCAL, sources={})
    (message,) = about(report, "app shop", "Environment[1].Value")
    # The reader's why and the mapping's what, joined.
    assert "OpsWorks printed" in message and "the file holds a placeholder" in message
