"""A CloudFormation template's AWS::OpsWorks resources as an OpsWorksStack: parameters,
pseudo parameters, conditions and intrinsics resolved where their inputs are known; the
rest left out and reported, one line each; secrets only where they become secure values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from client.importers.template_files import read_template_file
from opsflow.errors import SpecError
from opsflow.importing.cloudformation import read_template
from opsflow.importing.model import OpsWorksStack, Report

SAMPLES = Path(__file__).resolve().parents[3].parent / "shared" / "opsworks" / "cloudformation"
SECRET = "hunter2-do-not-print"


def read(
    text: str,
    parameters: dict[str, str] | None = None,
    *,
    region: str | None = "eu-west-1",
    stack_name: str = "shop",
) -> tuple[OpsWorksStack, Report]:
    template = yaml.safe_load(text)
    return read_template(
        template, where="t.yaml", parameters=parameters or {}, stack_name=stack_name, region=region
    )


def lines(report: Report) -> dict[tuple[str, str], str]:
    return {(line.where, line.property): line.message for line in report.lines}


def stack_of(properties: str, extra: str = "", parameters: str = "") -> str:
    """A template with one stack of `properties` (indented 6), `extra` resources."""
    return f"""
Parameters:
{parameters or "  Unused: {Type: String, Default: x}"}
Resources:
  S:
    Type: AWS::OpsWorks::Stack
    Properties:
{properties}
{extra}
"""


# -- the sample ----------------------------------------------------------------------------


def sample(form: str) -> dict[str, Any]:
    file = SAMPLES / f"php-sample-app.template.{form}"
    if not file.exists():
        pytest.skip(f"AWS's sample template is not here: {file}")
    return read_template_file(file)


def test_the_sample_reads_the_same_from_json_and_yaml() -> None:
    results = [
        read_template(sample(form), where=form, parameters={}, stack_name="php", region="us-east-1")
        for form in ("json", "yaml")
    ]
    (json_stack, json_report), (yaml_stack, yaml_report) = results
    assert json_stack == yaml_stack
    assert lines(json_report).keys() == lines(yaml_report).keys()


def test_the_sample_gives_its_stack_layers_instances_app_and_elb() -> None:
    stack, report = read_template(
        sample("yaml"), where="sample", parameters={}, stack_name="php", region="us-east-1"
    )
    assert stack.stack.id == "myStack"
    assert stack.stack.fields["Name"] == "php"
    assert stack.stack.fields["CustomCookbooksSource"]["Type"] == "git"
    assert [layer.fields["Shortname"] for layer in stack.layers] == ["php-app", "db-layer"]
    assert stack.layers[1].fields["VolumeConfigurations"][0]["MountPoint"] == "/vol/mysql"
    assert {i.id: i.fields["LayerIds"] for i in stack.instances} == {
        "myAppInstance1": ["myLayer"],
        "myAppInstance2": ["myLayer"],
        "myDBInstance": ["DBLayer"],
    }
    assert stack.apps[0].fields["Name"] == "myapp"
    assert stack.apps[0].fields["AppSource"]["Revision"] == "version2"
    (elb,) = stack.elb_attachments
    assert elb.fields["ElasticLoadBalancerName"] == "ELB"
    assert elb.fields["LayerId"] == "myLayer"
    assert elb.fields["AvailabilityZones"] == ["us-east-1a", "us-east-1b", "us-east-1c"]
    found = lines(report)
    assert "AccountId" in found[("myStack", "ServiceRoleArn")]
    assert "MysqlRootPassword" in found[("DBLayer", "Attributes.MysqlRootPassword")]
    assert "not known" in found[("ELBAttachment", "ElasticLoadBalancerName")]
    assert "Classic ELB" in found[("ELB", "Type")]
    assert "MysqlRootPassword" not in stack.layers[1].fields["Attributes"]


def test_the_samples_db_password_given_is_a_secret_kept_nowhere() -> None:
    stack, report = read_template(
        sample("json"),
        where="sample",
        parameters={"MysqlRootPassword": SECRET},
        stack_name="php",
        region=None,
    )
    assert SECRET not in stack.model_dump_json()
    assert SECRET not in report.render()
    assert "NoEcho" in lines(report)[("DBLayer", "Attributes.MysqlRootPassword")]


# -- parameters ----------------------------------------------------------------------------

PARAMETERS = """\
  Name: {Type: String, Default: shop}
  Disks: {Type: Number, Default: "2"}
  Ratio: {Type: Number, Default: 0.5}
  Zones: {Type: CommaDelimitedList, Default: "a, b,c"}
  Ports: {Type: "List<Number>", Default: "80,443"}
  Subnets: {Type: "List<AWS::EC2::Subnet::Id>", Default: "subnet-1,subnet-2"}
  Ami: {Type: "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>", Default: /aws/ami}
  Needed: {Type: String}"""

USES = """\
      Name: {Ref: Name}
      Disks: {Ref: Disks}
      Ratio: {Ref: Ratio}
      Zones: {Ref: Zones}
      Ports: {Ref: Ports}
      Subnets: {Ref: Subnets}
      Ami: {Ref: Ami}
      Needed: {Ref: Needed}"""


def test_parameters_take_their_defaults_typed() -> None:
    stack, report = read(stack_of(USES, parameters=PARAMETERS))
    assert stack.stack.fields == {
        "Name": "shop",
        "Disks": 2,
        "Ratio": 0.5,
        "Zones": ["a", "b", "c"],
        "Ports": [80, 443],
        "Subnets": ["subnet-1", "subnet-2"],
    }
    found = lines(report)
    assert "SSM Parameter Store" in found[("S", "Ami")]
    assert "--parameter Needed=VALUE" in found[("S", "Needed")]


def test_parameters_given_override_the_defaults() -> None:
    given = {"Name": "web", "Disks": "3", "Zones": "x", "Ami": "ami-123", "Needed": "yes"}
    stack, report = read(stack_of(USES, parameters=PARAMETERS), given)
    fields = stack.stack.fields
    assert (fields["Name"], fields["Disks"], fields["Zones"]) == ("web", 3, ["x"])
    assert (fields["Ami"], fields["Needed"]) == ("ami-123", "yes")
    assert report.lines == []


def test_a_parameter_the_template_lacks_is_refused_naming_its_parameters() -> None:
    with pytest.raises(SpecError) as caught:
        read(stack_of(USES, parameters=PARAMETERS), {"Nmae": "web"})
    assert caught.value.file == "t.yaml"
    assert caught.value.problems == [
        "--parameter Nmae: the template has no parameter Nmae "
        "(its parameters: Name, Disks, Ratio, Zones, Ports, Subnets, Ami, Needed)"
    ]


def test_a_value_that_fails_its_type_or_allowed_values_is_refused() -> None:
    with pytest.raises(SpecError, match="--parameter Disks: 'many' is not a Number"):
        read(stack_of(USES, parameters=PARAMETERS), {"Disks": "many"})
    allowed = "  Env: {Type: String, Default: dev, AllowedValues: [dev, prod]}"
    with pytest.raises(SpecError, match="--parameter Env: 'test' is not one of dev, prod"):
        read(stack_of("      Name: {Ref: Env}", parameters=allowed), {"Env": "test"})


@pytest.mark.parametrize(
    ("declared", "given", "problem"),
    [
        ("Type: String, AllowedPattern: '[a-z]+'", "Ab1", "does not match AllowedPattern [a-z]+"),
        ("Type: String, MinLength: 3", "ab", "is shorter than MinLength 3"),
        ("Type: String, MaxLength: '2'", "abc", "is longer than MaxLength 2"),
        ("Type: Number, MinValue: 1", "0", "is below MinValue 1"),
        ("Type: Number, MaxValue: 10", "11", "is above MaxValue 10"),
    ],
)
def test_a_value_that_breaks_a_declared_constraint_is_refused(
    declared: str, given: str, problem: str
) -> None:
    with pytest.raises(SpecError) as refused:
        read(stack_of("      Name: {Ref: P}", parameters=f"  P: {{{declared}}}"), {"P": given})
    assert refused.value.problems == [f"--parameter P: {given!r} {problem}"]
    fine = {"Ab1": "abc", "ab": "abc", "abc": "ab", "0": "1", "11": "10"}[given]
    stack, _ = read(
        stack_of("      Name: {Ref: P}", parameters=f"  P: {{{declared}}}"), {"P": fine}
    )
    assert str(stack.stack.fields["Name"]) == fine


# -- pseudo parameters ---------------------------------------------------------------------

PSEUDO = """\
      Name: {Ref: "AWS::StackName"}
      Region: {Ref: "AWS::Region"}
      Partition: {Ref: "AWS::Partition"}
      Suffix: {Ref: "AWS::URLSuffix"}
      Account: {Ref: "AWS::AccountId"}
      Id: {Ref: "AWS::StackId"}
      Topics: {Ref: "AWS::NotificationARNs"}
      Gone: {Ref: "AWS::NoValue"}
      Kept: [a, {Ref: "AWS::NoValue"}, b]"""


def test_pseudo_parameters() -> None:
    stack, report = read(stack_of(PSEUDO), region="cn-north-1", stack_name="legacy")
    assert stack.stack.fields == {
        "Name": "legacy",
        "Region": "cn-north-1",
        "Partition": "aws-cn",
        "Suffix": "amazonaws.com.cn",
        "Kept": ["a", "b"],
    }
    assert set(lines(report)) == {("S", "Account"), ("S", "Id"), ("S", "Topics")}


def test_an_unknown_region_leaves_what_needs_it_out() -> None:
    stack, report = read(stack_of(PSEUDO), region=None)
    assert "Region" not in stack.stack.fields
    assert stack.stack.fields["Partition"] == "aws"
    assert "--region" in lines(report)[("S", "Region")]


# -- intrinsic functions -------------------------------------------------------------------

INTRINSICS = """\
      Joined: {"Fn::Join": ["-", [{Ref: Env}, web, 1]]}
      Sub: {"Fn::Sub": "${Env}.${AWS::Region}/${!Literal}/${Admin.SshUsername}"}
      SubVars: {"Fn::Sub": ["${Host}:${Port}", {Host: {Ref: Env}, Port: 8080}]}
      Second: {"Fn::Select": [1, {"Fn::Split": [",", "a,b,c"]}]}
      Zone: {"Fn::Select": ["0", {"Fn::GetAZs": ""}]}
      Mapped: {"Fn::FindInMap": [Sizes, {Ref: Env}, Instance]}
      Coded: {"Fn::Base64": "hi"}
      Att: {"Fn::GetAtt": [Admin, SshUsername]}
      Ip: {"Fn::GetAtt": [Web1, PublicIp]}
      Imported: {"Fn::ImportValue": shared}
      Blocks: {"Fn::Cidr": [10.0.0.0/16, 4, 8]}
      Counted: {"Fn::Length": [a, {Ref: Env}]}
      Json: {"Fn::ToJsonString": {env: {Ref: Env}, zones: [a]}}
      TooMany: {"Fn::Cidr": [10.0.0.0/24, 4, 8]}
      Other: {"Fn::Transform": {Name: x}}
      Missing: {"Fn::FindInMap": [Sizes, staging, Instance]}
      OutOfRange: {"Fn::Select": [5, [a]]}"""

INTRINSIC_RESOURCES = """\
  Admin:
    Type: AWS::OpsWorks::UserProfile
    Properties: {IamUserArn: "arn:aws:iam::1:user/ann", SshUsername: ann}
  Web1:
    Type: AWS::OpsWorks::Instance
    Properties: {StackId: {Ref: S}, LayerIds: [], InstanceType: t3.micro}
Mappings:
  Sizes:
    prod: {Instance: m5.large}"""


def test_intrinsic_functions_resolve_where_their_inputs_are_known() -> None:
    stack, report = read(
        stack_of(INTRINSICS, INTRINSIC_RESOURCES, "  Env: {Type: String, Default: prod}")
    )
    assert stack.stack.fields == {
        "Joined": "prod-web-1",
        "Sub": "prod.eu-west-1/${Literal}/ann",
        "SubVars": "prod:8080",
        "Second": "b",
        "Zone": "eu-west-1a",
        "Mapped": "m5.large",
        "Coded": "aGk=",
        "Att": "ann",
        "Blocks": ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24"],
        "Counted": 2,
        "Json": '{"env":"prod","zones":["a"]}',
    }
    found = lines(report)
    assert "assumed" in found[("S", "Zone")]
    assert "known only once AWS has created Web1" in found[("S", "Ip")]
    assert "another CloudFormation stack" in found[("S", "Imported")]
    assert "holds only 1 subnets of 8 bits" in found[("S", "TooMany")]
    assert "Fn::Transform is not evaluated" in found[("S", "Other")]
    assert "'staging'" in found[("S", "Missing")]
    assert "index 5" in found[("S", "OutOfRange")]


def test_refs_tie_opsworks_resources_by_logical_id_and_name_others() -> None:
    extra = """\
  Role: {Type: "AWS::IAM::Role", Properties: {}}
  L:
    Type: AWS::OpsWorks::Layer
    Properties: {StackId: {Ref: S}, CustomInstanceProfileArn: {Ref: Role}}
  Named:
    Type: AWS::ElasticLoadBalancing::LoadBalancer
    Properties: {LoadBalancerName: shop-lb, Subnets: [subnet-1]}
  Att:
    Type: AWS::OpsWorks::ElasticLoadBalancerAttachment
    Properties: {ElasticLoadBalancerName: {Ref: Named}, LayerId: {Ref: L}}"""
    stack, report = read(stack_of("      Name: s", extra))
    assert stack.layers[0].fields == {"StackId": "S", "CustomInstanceProfileArn": "Role"}
    assert stack.elb_attachments[0].fields == {
        "ElasticLoadBalancerName": "shop-lb",
        "LayerId": "L",
        "SubnetIds": ["subnet-1"],
        "Region": "eu-west-1",
    }
    found = lines(report)
    assert "the name AWS gave it is not known" in found[("L", "CustomInstanceProfileArn")]
    assert "not an OpsWorks resource" in found[("Role", "Type")]
    assert "goes with Att" in found[("Named", "Type")]


# -- conditions ----------------------------------------------------------------------------

CONDITIONS = """\
Parameters:
  Env: {Type: String, Default: prod}
  Unset: {Type: String}
Conditions:
  Prod: {"Fn::Equals": [{Ref: Env}, prod]}
  Dev: {"Fn::Not": [{Condition: Prod}]}
  Big: {"Fn::And": [{Condition: Prod}, {"Fn::Equals": [1, 1]}]}
  Any: {"Fn::Or": [{Condition: Dev}, {Condition: Big}]}
  Unknown: {"Fn::Equals": [{Ref: Unset}, x]}
  DevOrUnknown: {"Fn::And": [{Condition: Dev}, {Condition: Unknown}]}
Resources:
  S:
    Type: AWS::OpsWorks::Stack
    Properties:
      Size: {"Fn::If": [Big, large, small]}
      Debug: {"Fn::If": [Dev, "true", {Ref: "AWS::NoValue"}]}
      Nested: {"Fn::If": [Any, {A: 1, B: {Ref: "AWS::AccountId"}}, {}]}
      Maybe: {"Fn::If": [Unknown, a, b]}
      Short: {"Fn::If": [DevOrUnknown, a, b]}
  ProdLayer:
    Type: AWS::OpsWorks::Layer
    Condition: Prod
    Properties: {StackId: {Ref: S}, Shortname: prod}
  DevLayer:
    Type: AWS::OpsWorks::Layer
    Condition: Dev
    Properties: {StackId: {Ref: S}, Shortname: dev}
  Web1:
    Type: AWS::OpsWorks::Instance
    Properties: {LayerIds: [{Ref: ProdLayer}, {Ref: DevLayer}]}
  Odd:
    Type: AWS::OpsWorks::App
    Condition: Unknown
    Properties: {StackId: {Ref: S}, Name: odd}
"""


def test_conditions_choose_values_and_leave_resources_out() -> None:
    stack, report = read(CONDITIONS)
    assert stack.stack.fields == {"Size": "large", "Nested": {"A": 1}, "Short": "b"}
    assert [layer.id for layer in stack.layers] == ["ProdLayer"]
    assert stack.instances[0].fields["LayerIds"] == ["ProdLayer"]
    assert [app.id for app in stack.apps] == ["Odd"]
    found = lines(report)
    assert found[("DevLayer", "Condition")] == "Dev is false: the resource is left out"
    assert "left out" in found[("Web1", "LayerIds[1]")]
    assert "AccountId" in found[("S", "Nested.B")]
    assert "Unset" in found[("S", "Maybe")]
    assert "kept" in found[("Odd", "Condition")]


def test_a_parameter_flips_the_conditions() -> None:
    stack, report = read(CONDITIONS, {"Env": "dev"})
    assert stack.stack.fields == {"Size": "small", "Debug": "true", "Nested": {"A": 1}}
    assert [layer.id for layer in stack.layers] == ["DevLayer"]
    # Dev is true now, so DevOrUnknown hangs on the unknown one.
    assert "Unset" in lines(report)[("S", "Short")]


# -- NoEcho: secrets go only where they become secure values --------------------------------

NO_ECHO = """\
Parameters:
  Token: {Type: String, NoEcho: true}
  DbPassword: {Type: String, NoEcho: "true", Default: from-the-template}
Resources:
  S:
    Type: AWS::OpsWorks::Stack
    Properties:
      CustomJson: {api: {token: {Ref: Token}}}
      RdsDbInstances:
        - {RdsDbInstanceArn: "arn:aws:rds:eu-west-1:1:db:shop", DbUser: shop,
           DbPassword: {Ref: DbPassword}}
  L:
    Type: AWS::OpsWorks::Layer
    Properties: {Attributes: {Password: {"Fn::Sub": "pre-${DbPassword}"}}}
  A:
    Type: AWS::OpsWorks::App
    Properties:
      Name: shop
      Environment:
        - {Key: TOKEN, Value: {Ref: Token}, Secure: true}
        - {Key: PLAIN_TOKEN, Value: {Ref: Token}}
        - {Key: MODE, Value: prod}
      SslConfiguration: {Certificate: cert, PrivateKey: {Ref: Token}}
"""


def test_no_echo_values_reach_only_secure_values() -> None:
    stack, report = read(NO_ECHO, {"Token": SECRET})
    app = stack.apps[0].fields
    assert app["Environment"] == [
        {"Key": "TOKEN", "Value": SECRET, "Secure": True},
        {"Key": "PLAIN_TOKEN"},
        {"Key": "MODE", "Value": "prod"},
    ]
    assert app["SslConfiguration"]["PrivateKey"] == SECRET
    assert stack.stack.fields["RdsDbInstances"][0]["DbPassword"] == "from-the-template"
    assert stack.stack.fields["CustomJson"] == {"api": {}}
    assert stack.layers[0].fields == {"Attributes": {}}
    found = lines(report)
    for key in [
        ("S", "CustomJson.api.token"),
        ("L", "Attributes.Password"),
        ("A", "Environment[1].Value"),
    ]:
        assert "NoEcho parameter" in found[key]
    assert SECRET not in report.render()
    assert "from-the-template" not in report.render()
    # The values kept are plain strings, not the importer's marked kind.
    assert type(app["Environment"][0]["Value"]) is str


def test_a_no_echo_parameter_without_a_value_asks_for_a_file() -> None:
    stack, report = read(NO_ECHO)
    assert stack.apps[0].fields["Environment"][0] == {"Key": "TOKEN", "Secure": True}
    assert "--parameter Token=@FILE" in lines(report)[("A", "Environment[0].Value")]


def test_a_refused_no_echo_value_is_not_shown() -> None:
    allowed = "  Token: {Type: String, NoEcho: true, AllowedValues: [a, b]}"
    with pytest.raises(SpecError) as caught:
        read(stack_of("      Name: x", parameters=allowed), {"Token": SECRET})
    assert SECRET not in str(caught.value)


# -- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("AWSTemplateFormatVersion: '2010-09-09'\n", "Resources: the template has no resources"),
        (
            "Resources:\n  B: {Type: 'AWS::S3::Bucket'}\n  R: {Type: 'AWS::IAM::Role'}\n",
            "no AWS::OpsWorks resources (found types: AWS::IAM::Role, AWS::S3::Bucket)",
        ),
        (
            "Resources:\n  L: {Type: 'AWS::OpsWorks::Layer'}\n",
            "no AWS::OpsWorks::Stack resource (found types: AWS::OpsWorks::Layer)",
        ),
        (
            "Resources:\n  A: {Type: 'AWS::OpsWorks::Stack'}\n"
            "  B: {Type: 'AWS::OpsWorks::Stack'}\n",
            "several AWS::OpsWorks::Stack resources (A, B)",
        ),
        ("Resources:\n  A: [x]\n", "Resources.A: not a resource"),
    ],
)
def test_a_template_that_is_not_one_opsworks_stack_is_refused(text: str, problem: str) -> None:
    with pytest.raises(SpecError) as caught:
        read(text)
    assert caught.value.file == "t.yaml"
    assert problem in caught.value.problems[0]


def test_a_stack_left_out_by_its_condition_is_no_stack() -> None:
    text = """\
Conditions: {Never: {"Fn::Equals": [a, b]}}
Resources:
  S: {Type: "AWS::OpsWorks::Stack", Condition: Never}
"""
    with pytest.raises(SpecError, match=r"no AWS::OpsWorks::Stack resource \(S left out"):
        read(text)


# -- every OpsWorks resource kind ----------------------------------------------------------

FULL = """\
Parameters:
  KeyName: {Type: "AWS::EC2::KeyPair::KeyName", Default: ops}
Resources:
  S:
    Type: AWS::OpsWorks::Stack
    Properties:
      Name: shop
      ConfigurationManager: {Name: Chef, Version: "11.10"}
      CustomJson: {shop: {greeting: hello}}
      DefaultSshKeyName: {Ref: KeyName}
  Web:
    Type: AWS::OpsWorks::Layer
    Properties:
      StackId: {Ref: S}
      Type: custom
      Shortname: web
      CustomRecipes: {Setup: ["web::setup"], Deploy: ["web::deploy"]}
      LoadBasedAutoScaling:
        Enable: true
        UpScaling: {CpuThreshold: 80, InstanceCount: 2, ThresholdsWaitTime: 5}
        DownScaling: {CpuThreshold: 20, InstanceCount: 1, IgnoreMetricsTime: 10}
  Db:
    Type: AWS::OpsWorks::Layer
    Properties: {StackId: {Ref: S}, Type: custom, Shortname: db}
  Web1:
    Type: AWS::OpsWorks::Instance
    Properties: {StackId: {Ref: S}, LayerIds: [{Ref: Web}, {Ref: Db}], InstanceType: t3.small,
                 Volumes: [{Ref: Data}]}
  Night1:
    Type: AWS::OpsWorks::Instance
    Properties:
      StackId: {Ref: S}
      LayerIds: [{Ref: Web}]
      AutoScalingType: timer
      TimeBasedAutoScaling:
        Monday: {"9": "on", "10": "on"}
        Friday: {"17": "on"}
  Load1:
    Type: AWS::OpsWorks::Instance
    Properties: {StackId: {Ref: S}, LayerIds: [{Ref: Web}], AutoScalingType: load}
  Shop:
    Type: AWS::OpsWorks::App
    Properties:
      StackId: {Ref: S}
      Name: Shop
      Shortname: shop
      Type: other
      AppSource: {Type: archive, Url: "https://example.com/shop.tgz"}
      Domains: [shop.example.com]
      DataSources:
        - {Type: RdsDbInstance, Arn: "arn:aws:rds:eu-west-1:1:db:shop", DatabaseName: shop}
  Admin:
    Type: AWS::OpsWorks::App
    Properties: {StackId: {Ref: S}, Name: admin, AppSource: {Type: s3, Url: "s3://b/admin.zip"}}
  Data:
    Type: AWS::OpsWorks::Volume
    Properties: {StackId: {Ref: S}, Ec2VolumeId: vol-123, MountPoint: /data, Name: data}
  Ann:
    Type: AWS::OpsWorks::UserProfile
    Properties: {IamUserArn: "arn:aws:iam::1:user/ann", SshUsername: ann,
                 SshPublicKey: "ssh-ed25519 AAAA ann", AllowSelfManagement: false}
"""


def test_every_opsworks_resource_kind_lands_in_its_list() -> None:
    stack, report = read(FULL)
    assert report.lines == []
    assert stack.stack.fields["CustomJson"] == {"shop": {"greeting": "hello"}}
    assert stack.stack.fields["DefaultSshKeyName"] == "ops"
    assert [layer.id for layer in stack.layers] == ["Web", "Db"]
    assert stack.layers[0].fields["LoadBasedAutoScaling"]["UpScaling"]["CpuThreshold"] == 80
    assert {i.id: i.fields["LayerIds"] for i in stack.instances} == {
        "Web1": ["Web", "Db"],
        "Night1": ["Web"],
        "Load1": ["Web"],
    }
    assert stack.instances[0].fields["Volumes"] == ["Data"]
    night = stack.instances[1].fields
    assert night["AutoScalingType"] == "timer"
    assert night["TimeBasedAutoScaling"] == {
        "Monday": {"9": "on", "10": "on"},
        "Friday": {"17": "on"},
    }
    assert [app.id for app in stack.apps] == ["Shop", "Admin"]
    assert stack.apps[0].fields["DataSources"][0]["DatabaseName"] == "shop"
    assert stack.volumes[0].fields["MountPoint"] == "/data"
    assert stack.users[0].fields["SshUsername"] == "ann"
    assert stack.rds_db_instances == []


def test_template_sections_opsflow_has_not_are_reported() -> None:
    text = FULL + "Outputs:\n  Url: {Value: x}\nTransform: AWS::Serverless-2016-10-31\n"
    _, report = read(text)
    found = lines(report)
    assert "Url" in found[("t.yaml", "Outputs")]
    assert "not run" in found[("t.yaml", "Transform")]


def test_a_no_echo_value_on_the_load_balancer_stays_off_the_attachment() -> None:
    extra = """\
  L: {Type: "AWS::OpsWorks::Layer", Properties: {StackId: {Ref: S}}}
  Lb:
    Type: AWS::ElasticLoadBalancing::LoadBalancer
    Properties: {Subnets: [{Ref: Hidden}]}
  Att:
    Type: AWS::OpsWorks::ElasticLoadBalancerAttachment
    Properties: {ElasticLoadBalancerName: {Ref: Lb}, LayerId: {Ref: L}}"""
    hidden = "  Hidden: {Type: String, NoEcho: true}"
    stack, report = read(stack_of("      Name: s", extra, hidden), {"Hidden": SECRET})
    assert stack.elb_attachments[0].fields["SubnetIds"] == []
    assert "NoEcho parameter Hidden" in lines(report)[("Lb", "SubnetIds[0]")]
    assert SECRET not in stack.model_dump_json() + report.render()


def test_an_attribute_that_refers_to_itself_is_reported_not_looped() -> None:
    extra = """\
  U:
    Type: AWS::OpsWorks::UserProfile
    Properties: {SshUsername: {"Fn::GetAtt": [U, SshUsername]}}"""
    stack, report = read(stack_of("      Name: s", extra))
    assert stack.users[0].fields == {}
    assert "known only once AWS has created U" in lines(report)[("U", "SshUsername")]
