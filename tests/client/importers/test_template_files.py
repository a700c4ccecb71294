"""Reading a template file: JSON as it is, YAML with CloudFormation's short forms turned
into the long forms, and a clear refusal (file, line, column) of anything else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from client.importers.template_files import parse_template, read_template_file
from opsflow.errors import SpecError

SHORT = """\
AWSTemplateFormatVersion: 2010-09-09
Conditions:
  Prod: !Equals [!Ref Env, prod]
  Both: !And [!Condition Prod, !Not [!Equals [!Ref Env, dev]]]
  Either: !Or [!Condition Prod, !Condition Both]
Resources:
  S:
    Type: AWS::OpsWorks::Stack
    Properties:
      Name: !Sub "${AWS::StackName}-${Env}"
      Two: !Sub ["${A}", {A: !Ref Env}]
      Joined: !Join [",", [!Ref A, !GetAtt U.SshUsername]]
      Listed: !GetAtt [U, SshUsername]
      Picked: !If [Prod, !Select [0, !GetAZs ""], !Select [1, !Split [",", "a,b"]]]
      Mapped: !FindInMap [M, !Ref "AWS::Region", Size]
      Coded: !Base64 hello
      Imported: !ImportValue shared-vpc
      Blocks: !Cidr [10.0.0.0/16, 4, 8]
"""

LONG = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Conditions": {
        "Prod": {"Fn::Equals": [{"Ref": "Env"}, "prod"]},
        "Both": {
            "Fn::And": [
                {"Condition": "Prod"},
                {"Fn::Not": [{"Fn::Equals": [{"Ref": "Env"}, "dev"]}]},
            ]
        },
        "Either": {"Fn::Or": [{"Condition": "Prod"}, {"Condition": "Both"}]},
    },
    "Resources": {
        "S": {
            "Type": "AWS::OpsWorks::Stack",
            "Properties": {
                "Name": {"Fn::Sub": "${AWS::StackName}-${Env}"},
                "Two": {"Fn::Sub": ["${A}", {"A": {"Ref": "Env"}}]},
                "Joined": {"Fn::Join": [",", [{"Ref": "A"}, {"Fn::GetAtt": ["U", "SshUsername"]}]]},
                "Listed": {"Fn::GetAtt": ["U", "SshUsername"]},
                "Picked": {
                    "Fn::If": [
                        "Prod",
                        {"Fn::Select": [0, {"Fn::GetAZs": ""}]},
                        {"Fn::Select": [1, {"Fn::Split": [",", "a,b"]}]},
                    ]
                },
                "Mapped": {"Fn::FindInMap": ["M", {"Ref": "AWS::Region"}, "Size"]},
                "Coded": {"Fn::Base64": "hello"},
                "Imported": {"Fn::ImportValue": "shared-vpc"},
                "Blocks": {"Fn::Cidr": ["10.0.0.0/16", 4, 8]},
            },
        }
    },
}


def test_yaml_short_forms_become_the_long_forms() -> None:
    assert parse_template(SHORT, "t.yaml") == LONG


def test_a_json_template_and_its_yaml_twin_read_the_same(tmp_path: Path) -> None:
    (tmp_path / "t.json").write_text(json.dumps(LONG, indent="\t"))
    (tmp_path / "t.yaml").write_text(SHORT)
    assert read_template_file(tmp_path / "t.json") == read_template_file(tmp_path / "t.yaml")


def test_long_forms_in_yaml_stay_as_they_are() -> None:
    text = "Resources:\n  S:\n    Properties:\n      Name: {'Fn::Join': ['-', [a, b]]}\n"
    assert parse_template(text, "t.yaml")["Resources"]["S"]["Properties"]["Name"] == {
        "Fn::Join": ["-", ["a", "b"]]
    }


def test_yaml_that_builds_python_objects_is_refused_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    text = f"Resources: !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(SpecError, match="not valid YAML"):
        parse_template(text, "evil.yaml")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"Resources": {"S": }', "line 1, column 21: not valid JSON"),
        ("Resources:\n  S: [a, b\n", "line 3, column 1: not valid YAML"),
        ("- a\n- b\n", "must be a JSON or YAML mapping"),
        ("just some words\n", "must be a JSON or YAML mapping"),
        ("", "must be a JSON or YAML mapping"),
    ],
)
def test_what_is_neither_a_json_nor_a_yaml_mapping_is_refused_naming_where(
    tmp_path: Path, text: str, problem: str
) -> None:
    file = tmp_path / "stack.template"
    file.write_text(text)
    with pytest.raises(SpecError) as caught:
        read_template_file(file)
    assert caught.value.file == str(file)
    assert problem in caught.value.problems[0]
    assert caught.value.exit_code == 2


def test_a_binary_or_missing_file_is_refused(tmp_path: Path) -> None:
    binary = tmp_path / "image.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(SpecError, match="neither JSON nor YAML"):
        read_template_file(binary)
    with pytest.raises(SpecError, match="file does not exist"):
        read_template_file(tmp_path / "absent.yaml")
