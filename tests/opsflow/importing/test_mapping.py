"""The mapping from an OpsWorks stack to a stack file: what is carried over, what is
reported, what is left to a person (placeholders), and that what is resolved loads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from client.stackfile import load_stack_file
from opsflow.errors import InvalidInput
from opsflow.importing.mapping import stack_file
from opsflow.importing.model import OpsWorksStack, Report, Resource
from opsflow.importing.placeholders import placeholders
from opsflow.secrets import new_key
from opsflow.spec import Provider, StackSpec
from tests.opsflow.importing.samples import (
    DB_ARN,
    described,
    php_sample,
    private_key,
    public_key,
    resource,
)

LOCAL = Provider.LOCAL
EC2 = Provider.EC2


def _map(
    found: OpsWorksStack,
    provider: Provider = LOCAL,
    sources: dict[str, str] | None = None,
    stack_name: str | None = None,
) -> tuple[dict[str, Any], Report]:
    report = Report()
    result = stack_file(
        found, report, provider=provider, sources=sources or {}, stack_name=stack_name
    )
    return result, report


def _lines(report: Report) -> list[str]:
    return [line.render() for line in report.lines]


def _load(tmp_path: Path, result: dict[str, Any]) -> StackSpec:
    """What the CLI does with the result: YAML on disk, read by the stack-file loader."""
    path = tmp_path / "stack.yml"
    path.write_text(yaml.safe_dump(result, sort_keys=False))
    return load_stack_file(path)


# ---- AWS's sample template -------------------------------------------------------------


def test_the_php_sample_on_local_maps_layers_instances_and_the_app(tmp_path: Path) -> None:
    result, report = _map(php_sample())
    assert placeholders(result) == []
    assert result == {
        "name": "php-sample-app",
        "provider": "local",
        "configuration_manager": "chef",
        "chef": {"version": "12"},
        "cookbooks": {"git": "git://github.com/amazonwebservices/opsworks-example-cookbooks.git"},
        "layers": [
            {
                "name": "php-app",
                "auto_healing": True,
                "recipes": {"configure": ["phpapp::appsetup"]},
                "instances": [{"hostname": "php-app1"}, {"hostname": "php-app2"}],
            },
            {
                "name": "db-layer",
                "auto_healing": True,
                "recipes": {"setup": ["phpapp::dbsetup"]},
                "instances": [{"hostname": "db-layer1"}],
            },
        ],
        "apps": [
            {
                "name": "myapp",
                "layers": ["php-app"],
                "source": {
                    "git": "git://github.com/amazonwebservices/opsworks-demo-php-simple-app.git",
                    "revision": "version2",
                },
                "type": "php",
                "document_root": "web",
            }
        ],
    }
    spec = _load(tmp_path, result)
    assert [layer.name for layer in spec.layers] == ["php-app", "db-layer"]
    lines = _lines(report)
    assert any(line.startswith("myLayer: Type: php-app: AWS's built-in recipes") for line in lines)
    assert any(
        line.startswith("DBLayer: Type: db-master: AWS's built-in recipes") for line in lines
    )
    assert "DBLayer: VolumeConfigurations: not carried over: EBS volumes, provider local" in lines
    assert "myAppInstance1: InstanceType: not carried over: an EC2 setting, provider local" in lines
    assert "myAppInstance1: Hostname: none given: named 'php-app1'" in lines
    assert any(
        line.startswith("ELBAttachment: ElasticLoadBalancerName: Classic ELB") for line in lines
    )
    assert (
        "DBLayer: Attributes.MysqlRootPasswordUbiquitous: 'true': not carried over (a setting "
        "of AWS's built-in recipes)" in lines
    )
    assert "myApp: Type: deployed to the php-app layers, as on OpsWorks: ['php-app']" in lines
    # ids and StackId carry no meaning for opsflow: never a report line
    assert not any("StackId" in line for line in lines)


def test_the_php_sample_on_ec2_leaves_what_a_person_decides_as_placeholders(
    tmp_path: Path,
) -> None:
    result, report = _map(php_sample(), EC2)
    assert [path for path, _ in placeholders(result)] == [
        "region",
        "ec2.ami",
        "ec2.key_pair",
        "ec2.ssh_key_file",
        "layers[0].load_balancer",
    ]
    php, db = result["layers"]
    assert php["instances"][0] == {"hostname": "php-app1", "ec2": {"instance_type": "m1.small"}}
    assert db["volumes"] == [{"size": 10, "type": "gp2", "mount_point": "/vol/mysql"}]
    assert "Classic ELB 'ELB'" in "".join(_lines(report))
    # Filled in by a person, the file loads.
    (tmp_path / "key").write_text(private_key())
    filled = _replace(
        result,
        {
            "region": "us-east-1",
            "ec2.ami": "ami-0abc1234def567890",
            "ec2.key_pair": "mine",
            "ec2.ssh_key_file": "key",
            "layers[0].load_balancer": (
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/php/"
                "0123456789abcdef"
            ),
        },
    )
    spec = _load(tmp_path, filled)
    assert spec.layers[1].volumes[0].mount_point == "/vol/mysql"
    assert spec.layers[0].instances[1].ec2 is not None
    assert spec.layers[0].instances[1].ec2.instance_type == "m1.small"


def _replace(document: Any, values: dict[str, Any], path: str = "") -> Any:
    if isinstance(document, dict):
        return {
            key: _replace(value, values, f"{path}.{key}" if path else key)
            for key, value in document.items()
        }
    if isinstance(document, list):
        return [_replace(value, values, f"{path}[{i}]") for i, value in enumerate(document)]
    return values.get(path, document)


# ---- a stack from describe-* output ----------------------------------------------------


def test_a_described_stack_maps_every_part(tmp_path: Path) -> None:
    key = public_key()
    result, report = _map(described(key), EC2)
    assert result["name"] == "shop-production"
    assert result["region"] == "eu-west-1"
    assert result["chef"] == {"version": "11.10"}
    assert result["custom_json"] == {"shop": {"currency": "EUR"}}
    assert result["cookbooks"] == {
        "git": "https://github.com/example/shop-cookbooks.git",
        "revision": "main",
    }
    ec2 = result["ec2"]
    assert ec2["subnet"] == "subnet-0abc1234"
    assert ec2["key_pair"] == "shop-key"
    assert ec2["instance_profile"] == "aws-opsworks-ec2-role"
    assert ec2["ssh_user"] == "ubuntu"
    web, cache = result["layers"]
    assert web["name"] == "web-servers"
    assert web["recipes"] == {
        "setup": ["nginx::default", "shop::setup"],
        "deploy": ["shop::deploy"],
        "shutdown": ["shop::stop"],
    }
    assert web["custom_json"] == {"nginx": {"workers": 4}}
    assert web["ec2"] == {"security_groups": ["sg-0abc1234"]}
    assert web["volumes"] == [{"size": 20, "type": "gp3", "mount_point": "/srv"}]
    assert web["load_based_scaling"] == {
        "enabled": True,
        "up": {
            "cpu": 80.0,  # MemoryThreshold -1: OpsWorks' "not set"
            "instance_count": 2,
            "thresholds_wait_time": "5m",  # OpsWorks counted minutes
            "ignore_metrics_time": "10m",
        },
        "down": {
            "cpu": 20.0,
            "instance_count": 1,
            "thresholds_wait_time": "10m",
            "ignore_metrics_time": "10m",
        },
    }
    nested = {instance["hostname"]: instance for instance in web["instances"]}
    assert nested["web1"] == {"hostname": "web1", "ec2": {"instance_type": "t3.small"}}
    assert nested["web-night"]["scaling"] == "time"
    assert nested["web-night"]["schedule"] == {
        "timezone": "UTC",
        "monday": [9, 10],
        "friday": [23],
    }
    assert nested["web-extra"]["scaling"] == "load"
    assert cache == {"name": "memcached", "auto_healing": False, "recipes": {}}
    assert result["instances"] == [
        {
            "hostname": "shop-both",
            "ec2": {"instance_type": "t3.medium", "subnet": "subnet-0def5678"},
            "layers": ["web-servers", "memcached"],
        }
    ]
    (app,) = result["apps"]
    assert app["name"] == "store"
    assert app["layers"] == ["web-servers", "memcached"]
    assert app["source"] == {"archive": "https://example.com/store.tar.gz"}
    assert app["environment"]["MODE"] == "production"
    assert app["environment"]["API_TOKEN"]["secure"] is True
    assert app["domains"] == ["shop.example.com"]
    assert app["document_root"] == "public"
    assert app["attributes"] == {"auto_bundle_on_deploy": "true"}
    assert app["data_source"] == "shop-db"
    (rds,) = result["rds"]
    assert {k: v for k, v in rds.items() if k != "password"} == {
        "name": "shop-db",
        "identifier": "shop-db",
        "username": "shop",
        "database_name": "shop",
    }
    assert result["users"] == [{"name": "alice-smith", "ssh_public_key": key, "sudo": True}]
    assert [path for path, _ in placeholders(result)] == [
        "ec2.ami",
        "ec2.ssh_key_file",
        "apps[0].environment.API_TOKEN.value",
        "rds[0].password.value",
    ]
    lines = _lines(report)
    stack = "stack 2f18b4cb-4de5-4429-a149-ff7da9f0d8ee"
    assert (
        f"{stack}: Name: 'Shop Production' is not a valid stack name: named 'shop-production'"
        in lines
    )
    assert "instance i2: Hostname: 'Shop_Both' is not a valid hostname: named 'shop-both'" in lines
    assert "app a1: Domains[1]: 'not a domain' is not a domain: left out" in lines
    assert any(line.startswith("user bob: SshPublicKey: bob's key is refused") for line in lines)
    assert any(line.startswith("app a1: Type: deployed to every layer") for line in lines)
    assert any(line.startswith(f"{stack}: ServiceRoleArn: not carried over") for line in lines)
    assert any(
        line.startswith("layer 97c1bd76-0ea4-4b5e-8d0b-9a0b4c3e0d02: Attributes.MemcachedMemory")
        for line in lines
    )
    # Ids, times and the instances' state of the moment are not worth a line; unset
    # (null) layer attributes neither.
    for quiet in ("StackId", "CreatedAt", "Arn", "Status", "PublicIp", "DefaultRecipes",
                  "MysqlRootPassword", "RubyVersion", "Engine", "Address"):  # fmt: skip
        assert not any(f": {quiet}" in line for line in lines), quiet


def test_a_described_stack_filled_in_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSFLOW_SECRET_KEY", new_key().decode())
    result, _ = _map(described(public_key()), EC2)
    (tmp_path / "key").write_text(private_key())
    filled = _replace(
        result,
        {
            "ec2.ami": "ami-0abc1234def567890",
            "ec2.ssh_key_file": "key",
            "apps[0].environment.API_TOKEN.value": "t0ken",
            "rds[0].password.value": "pw",
        },
    )
    spec = _load(tmp_path, filled)
    assert spec.declared_instances()["shop-both"] == ["web-servers", "memcached"]
    assert spec.apps[0].data_source == "shop-db"


def test_a_fully_resolved_stack_on_local_loads_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSFLOW_SECRET_KEY", new_key().decode())
    found = described(public_key())
    found.apps[0].fields["Environment"][1]["Value"] = "t0ken"
    result, report = _map(found, LOCAL)
    assert placeholders(result) == []
    assert "ec2" not in result and "region" not in result and "rds" not in result
    spec = _load(tmp_path, result)
    assert spec.provider == Provider.LOCAL
    assert spec.apps[0].data_source is None
    lines = _lines(report)
    assert any(
        ": Region: not carried over: the AWS region, provider local" in line for line in lines
    )
    assert any("RDS DB instance 'shop-db' is not carried over" in line for line in lines)
    assert "app a1: DataSources[0]: not carried over: RDS, provider local" in lines
    assert not any(line.startswith("instance") and "InstanceType" not in line and "Hostname"
                   not in line and "SubnetId" not in line for line in lines)  # fmt: skip


# ---- secrets ---------------------------------------------------------------------------

SECRET = "s3cret-never-shown"


def test_secrets_are_never_written_in_plain_text_outside_a_secure_value() -> None:
    found = php_sample()
    found.layers[1].fields["Attributes"]["MysqlRootPassword"] = SECRET
    found.stack.fields["CustomCookbooksSource"] |= {"Password": SECRET, "SshKey": SECRET}
    found.apps[0].fields["AppSource"] |= {"Username": "me", "Password": SECRET}
    found.apps[0].fields["Environment"] = [{"Key": "DB", "Value": SECRET, "Secure": "true"}]
    result, report = _map(found)
    assert result["apps"][0]["environment"] == {"DB": {"value": SECRET, "secure": True}}
    del result["apps"][0]["environment"]
    assert SECRET not in json.dumps(result)
    assert SECRET not in report.render()
    lines = _lines(report)
    assert (
        "DBLayer: Attributes.MysqlRootPassword: a secret (not shown): not carried over (a "
        "setting of AWS's built-in recipes)"
    ) in lines
    assert (
        "myStack: CustomCookbooksSource.Password: not carried over: opsflow fetches sources "
        "with the worker's own credentials"
    ) in lines


def test_a_ssl_key_is_a_secure_value_and_a_missing_one_a_placeholder() -> None:
    found = php_sample()
    found.apps[0].fields |= {
        "EnableSsl": "true",
        "SslConfiguration": {"Certificate": "-----BEGIN CERTIFICATE-----\nAA\n-----END "
                             "CERTIFICATE-----", "PrivateKey": SECRET},
    }  # fmt: skip
    result, _ = _map(found)
    assert result["apps"][0]["ssl"]["key"] == {"value": SECRET, "secure": True}
    del found.apps[0].fields["SslConfiguration"]["PrivateKey"]
    result, report = _map(found)
    assert [p for p, _ in placeholders(result)] == ["apps[0].ssl.key.value"]
    assert "myApp: SslConfiguration.PrivateKey: not in the input: the file holds a placeholder" in (
        _lines(report)
    )


# ---- names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Shop", "shop"),
        ("My Shop (prod)!", "my-shop-prod"),
        ("2024 shop", "shop"),
        ("___", "imported"),
        ("x" * 60, "x" * 39),
        ("a" * 38 + "-b", "a" * 38),
    ],
)
def test_stack_names_are_made_valid_and_each_change_reported(given: str, expected: str) -> None:
    found = php_sample()
    found.stack.fields["Name"] = given
    result, report = _map(found)
    assert result["name"] == expected
    assert _lines(report)[0] == (
        f"myStack: Name: {given!r} is not a valid stack name: named {expected!r}"
    )


def test_a_stack_without_a_name_takes_the_one_given() -> None:
    found = php_sample()
    del found.stack.fields["Name"]
    result, report = _map(found, stack_name="from-cli")
    assert result["name"] == "from-cli"
    assert not any(line.startswith("myStack: Name:") for line in _lines(report))


def test_names_that_end_up_alike_are_suffixed_and_reported() -> None:
    found = php_sample()
    found.layers[1].fields["Shortname"] = "PHP_App"
    found.instances[0].fields["Hostname"] = "php-app2"  # taken before the others are named
    result, report = _map(found)
    assert [layer["name"] for layer in result["layers"]] == ["php-app", "php-app-2"]
    assert [i["hostname"] for i in result["layers"][0]["instances"]] == ["php-app2", "php-app1"]
    assert result["layers"][1]["instances"] == [{"hostname": "php-app-21"}]
    assert (
        "DBLayer: Shortname: 'php-app' is taken by another layer name: named 'php-app-2'"
        in _lines(report)
    )


# ---- sources ---------------------------------------------------------------------------


def test_sources_replace_the_cookbooks_and_an_app_by_its_name(tmp_path: Path) -> None:
    sources = {"cookbooks": str(tmp_path / "cookbooks"), "myapp": str(tmp_path / "app")}
    result, report = _map(php_sample(), sources=sources)
    assert result["cookbooks"] == {"source": sources["cookbooks"]}
    assert result["apps"][0]["source"] == {"source": sources["myapp"]}
    assert f"myApp: AppSource: replaced by --source myapp={tmp_path / 'app'}" in _lines(report)


def test_a_source_naming_nothing_is_bad_input() -> None:
    with pytest.raises(InvalidInput, match="--source shop: names neither `cookbooks` nor an app"):
        _map(php_sample(), sources={"shop": "/tmp"})


def test_an_s3_source_is_fetched_over_https_and_a_private_one_is_a_placeholder() -> None:
    found = php_sample()
    url = "https://s3.amazonaws.com/bucket/cookbooks.tar.gz"
    found.stack.fields["CustomCookbooksSource"] = {"Type": "s3", "Url": url}
    result, report = _map(found)
    assert result["cookbooks"] == {"archive": url}
    assert any("works if it is public" in line for line in _lines(report))
    found.stack.fields["CustomCookbooksSource"] |= {"Username": "AKIA", "Password": SECRET}
    result, report = _map(found)
    assert [p for p, _ in placeholders(result)] == ["cookbooks.archive"]


def test_cookbooks_not_in_use_are_reported_not_carried() -> None:
    found = php_sample()
    found.stack.fields["UseCustomCookbooks"] = "false"
    result, report = _map(found)
    assert (
        "myStack: CustomCookbooksSource: not carried over: UseCustomCookbooks is not true"
        in _lines(report)
    )
    # Its layers still name recipes: where they are is a person's to say.
    assert [p for p, _ in placeholders(result)] == ["cookbooks.source"]
    assert any(
        "myStack: UseCustomCookbooks: not true, yet the layers name recipes" in line
        for line in _lines(report)
    )
    for layer in found.layers:
        layer.fields.pop("CustomRecipes", None)
    result, report = _map(found)
    assert "cookbooks" not in result and not placeholders(result)


# ---- the rest of the rules -------------------------------------------------------------


def test_an_unknown_field_is_reported_not_dropped() -> None:
    found = php_sample()
    found.layers[0].fields["Flavour"] = "vanilla"
    found.instances[0].fields["Tenancy"] = "dedicated"
    found.layers[0].fields["CustomRecipes"]["Reboot"] = ["x::y"]
    _, report = _map(found)
    lines = _lines(report)
    assert "myLayer: Flavour: not carried over: opsflow has no equivalent" in lines
    assert "myLayer: CustomRecipes.Reboot: not carried over: opsflow has no equivalent" in lines
    assert "myAppInstance1: Tenancy: not carried over: opsflow launches on shared tenancy" in lines


def test_recipes_that_are_not_cookbook_recipe_are_reported_and_left_out() -> None:
    found = php_sample()
    found.layers[0].fields["CustomRecipes"] = {"Setup": ["ok", "no way", "a::b::c"]}
    result, report = _map(found)
    assert result["layers"][0]["recipes"] == {"setup": ["ok::default"]}
    assert "myLayer: CustomRecipes.Setup[1]: 'no way' is not cookbook::recipe: left out" in (
        _lines(report)
    )


def test_an_instance_in_no_known_layer_is_left_out_and_reported() -> None:
    found = php_sample()
    found.instances[0].fields["LayerIds"] = ["gone"]
    result, report = _map(found)
    assert [i["hostname"] for i in result["layers"][0]["instances"]] == ["php-app1"]
    lines = _lines(report)
    assert "myAppInstance1: LayerIds: 'gone' is not a layer of the stack: left out" in lines
    assert "myAppInstance1: LayerIds: the instance is in no layer of the stack: left out" in lines


@pytest.mark.parametrize(
    ("manager", "expected", "placeholder"),
    [
        ({"Name": "Chef", "Version": "11.4"}, {"version": "11.4"}, False),
        ({"Name": "Chef", "Version": "12.2"}, {"version": "12"}, False),
        ({"Name": "Chef", "Version": "0.9"}, None, True),
    ],
)
def test_chef_versions(manager: dict[str, str], expected: Any, placeholder: bool) -> None:
    found = php_sample()
    found.stack.fields["ConfigurationManager"] = manager
    result, _ = _map(found)
    if placeholder:
        assert [p for p, _ in placeholders(result)] == ["chef.version"]
    else:
        assert result["chef"] == expected


def test_a_time_based_instance_without_hours_never_runs_and_says_so() -> None:
    found = php_sample()
    found.instances[0].fields["AutoScalingType"] = "timer"
    result, report = _map(found)
    instance = result["layers"][0]["instances"][0]
    assert instance["scaling"] == "time"
    assert instance["schedule"] == {"timezone": "UTC"}
    assert any("never runs" in line for line in _lines(report))


def test_load_based_scaling_opsflow_refuses_is_reported() -> None:
    found = php_sample()
    found.layers[0].fields["LoadBasedAutoScaling"] = {
        "Enable": "true",
        "UpScaling": {"CpuThreshold": 20},
        "DownScaling": {"CpuThreshold": 50},
    }
    result, report = _map(found)
    assert "load_based_scaling" not in result["layers"][0]
    assert any(
        line.startswith(
            "myLayer: LoadBasedAutoScaling: not carried over: load_based_scaling: up.cpu"
        )
        for line in _lines(report)
    )


def test_volumes_in_raid_become_one_volume_of_their_total_size() -> None:
    found = php_sample()
    found.layers[1].fields["VolumeConfigurations"] = [
        {"MountPoint": "/data", "NumberOfDisks": "2", "RaidLevel": "0", "Size": "50",
         "VolumeType": "io1", "Iops": 3000}
    ]  # fmt: skip
    result, report = _map(found, EC2)
    assert result["layers"][1]["volumes"] == [{"size": 100, "type": "io1", "mount_point": "/data"}]
    lines = _lines(report)
    assert any(line.startswith("DBLayer: VolumeConfigurations[0].NumberOfDisks") for line in lines)
    assert any(line.startswith("DBLayer: VolumeConfigurations[0].Iops") for line in lines)


def test_a_user_without_stack_permissions_gets_no_sudo_and_a_line() -> None:
    found = php_sample()
    found.users = [resource("alice", SshUsername="alice", SshPublicKey=public_key())]
    result, report = _map(found)
    assert result["users"][0]["sudo"] is False
    assert "alice: AllowSudo: alice: no stack permissions in the input: sudo false" in (
        _lines(report)
    )


def test_a_user_named_like_a_system_account_is_renamed() -> None:
    found = php_sample()
    found.users = [resource("r", SshUsername="root", SshPublicKey=public_key(), AllowSudo=True)]
    result, report = _map(found)
    assert result["users"][0]["name"] == "root-2"
    assert "r: SshUsername: 'root' is a system account: named 'root-2'" in _lines(report)


def test_existing_volumes_are_reported() -> None:
    found = php_sample()
    found.volumes = [
        Resource(id="v", source="myVolume", fields={"Ec2VolumeId": "vol-1", "MountPoint": "/d"})
    ]
    _, report = _map(found, EC2)
    assert any(line.startswith("myVolume: Ec2VolumeId: existing volume vol-1") for line in (
        _lines(report)
    ))  # fmt: skip


def test_an_app_without_a_matching_server_layer_deploys_to_every_layer() -> None:
    found = php_sample()
    found.apps[0].fields["Type"] = "nodejs"
    result, report = _map(found)
    assert result["apps"][0]["layers"] == ["php-app", "db-layer"]
    assert (
        "myApp: Type: deployed to every layer (php-app, db-layer): no nodejs-app layer to match; "
        "narrow `layers` to those that serve it"
    ) in _lines(report)


def test_rds_named_by_an_app_only_gets_placeholders_for_its_user_and_password() -> None:
    found = php_sample()
    found.apps[0].fields["DataSources"] = [{"Type": "RdsDbInstance", "Arn": DB_ARN}]
    result, _ = _map(found, EC2)
    assert result["rds"][0]["identifier"] == "shop-db"
    assert "rds[0].username" in [p for p, _ in placeholders(result)]
    assert "rds[0].password.value" in [p for p, _ in placeholders(result)]
    assert result["apps"][0]["data_source"] == "shop-db"


def test_registered_is_not_a_provider_to_import_into() -> None:
    with pytest.raises(InvalidInput, match="--provider"):
        _map(php_sample(), Provider.REGISTERED)


def test_a_templates_rds_instances_carry_their_password_as_a_secure_value() -> None:
    found = php_sample()
    found.stack.fields["RdsDbInstances"] = [
        {"RdsDbInstanceArn": DB_ARN, "DbUser": "shop", "DbPassword": SECRET}
    ]
    found.apps[0].fields["DataSources"] = [
        {"Type": "RdsDbInstance", "Arn": DB_ARN, "DatabaseName": "shop"}
    ]
    result, report = _map(found, EC2)
    assert result["rds"] == [
        {
            "name": "shop-db",
            "identifier": "shop-db",
            "username": "shop",
            "password": {"value": SECRET, "secure": True},
            "database_name": "shop",
        }
    ]
    assert result["apps"][0]["data_source"] == "shop-db"
    assert SECRET not in report.render()


def test_load_based_scaling_never_set_up_is_no_line() -> None:
    found = php_sample()
    found.layers[0].fields["LoadBasedAutoScaling"] = {"LayerId": "myLayer", "Enable": False}
    result, report = _map(found)
    assert "load_based_scaling" not in result["layers"][0]
    assert not any("LoadBasedAutoScaling" in line for line in _lines(report))


# ---- hosts registered with OpsWorks ----------------------------------------------------


def _with_registered(found: OpsWorksStack) -> OpsWorksStack:
    layer = found.layers[0].id
    found.instances += [
        Resource(
            id="onprem",
            source="instance onprem1",
            fields={
                "Hostname": "onprem1",
                "LayerIds": [layer],
                "InfrastructureClass": "on-premises",
                "RegisteredBy": "arn:aws:iam::123456789012:user/bob",
                "PrivateIp": "192.168.1.10",
                "ReportedOs": {"Family": "debian", "Name": "Debian", "Version": "10"},
            },
        ),
        Resource(
            id="byhand",
            source="instance byhand1",
            fields={
                "Hostname": "byhand1",
                "LayerIds": [layer],
                "InfrastructureClass": "ec2",
                "RegisteredBy": "arn:aws:iam::123456789012:user/bob",
                "PublicIp": "203.0.113.7",
                "InstanceType": "t3.small",
            },
        ),
    ]
    return found


def test_a_registered_host_is_not_launched_on_ec2_and_the_report_says_how_to_bring_it_in() -> None:
    result, report = _map(_with_registered(described(public_key())), EC2)
    hostnames = [
        instance["hostname"]
        for layer in result["layers"]
        for instance in layer.get("instances", [])
    ]
    assert "onprem1" not in hostnames and "byhand1" not in hostnames
    layer = result["layers"][0]["name"]
    assert (
        "instance onprem1: InfrastructureClass: an on-premises host registered with OpsWorks, "
        "which opsflow does not launch: left out; bring it in after `stack apply` with "
        f"`opsflow instance register shop-production --layer {layer} --host 192.168.1.10 "
        "--hostname onprem1 --key-file KEY`"
    ) in _lines(report)
    about_byhand = [line for line in _lines(report) if line.startswith("instance byhand1")]
    # One line for the whole instance: its EC2 fields are not reported one by one.
    assert len(about_byhand) == 1 and "--host 203.0.113.7 " in about_byhand[0]
    assert about_byhand[0].startswith("instance byhand1: RegisteredBy: an EC2 instance")


def test_a_registered_host_on_local_is_a_local_machine_and_said_so() -> None:
    result, report = _map(_with_registered(described(public_key())), LOCAL)
    hostnames = [i["hostname"] for i in result["layers"][0].get("instances", [])]
    assert {"onprem1", "byhand1"} <= set(hostnames)
    assert (
        "instance onprem1: InfrastructureClass: an on-premises host registered with "
        "OpsWorks: a local machine stands in"
    ) in _lines(report)


def test_an_unquoted_yaml_11_10_read_as_11_1_is_chef_11_10() -> None:
    found = php_sample()
    found.stack.fields["ConfigurationManager"] = {"Name": "Chef", "Version": 11.1}
    result, report = _map(found)
    assert result["chef"] == {"version": "11.10"}
    assert any("ConfigurationManager.Version: 11.1 (an unquoted" in line for line in _lines(report))
