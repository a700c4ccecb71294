"""`opsflow import cloudformation|describe` as a user runs it (the console script): the
stack file on stdout or in `-o`, the report on stderr or in `--report`; bad input exits 2
naming the file and writes nothing; the output passes `stack plan` where nothing needs a
person, and is refused by name where something does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from client.stackfile import load_stack_file
from opsflow.errors import SpecError
from runtime.sealing import Sealer

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent / "importers"
SHOP = HERE / "shop.template.yaml"
SAMPLE = REPO.parent / "shared" / "opsworks" / "cloudformation"
needs_sample = pytest.mark.skipif(
    not SAMPLE.is_dir(), reason=f"AWS's sample template is not here ({SAMPLE})"
)


def opsflow(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "client.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(cwd)},
        check=False,
    )


def no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout


@needs_sample
def test_aws_sample_in_json_and_yaml_gives_one_stack_file_that_plans_on_local(
    tmp_path: Path,
) -> None:
    outputs = []
    for form in ("json", "yaml"):
        done = opsflow(
            "import",
            "cloudformation",
            str(SAMPLE / f"php-sample-app.template.{form}"),
            "--provider",
            "local",
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        outputs.append(yaml.safe_load(done.stdout))
        # every line of the report names a resource and a property
        report = done.stderr.strip().splitlines()
        assert report and all(line.count(": ") >= 2 for line in report)
        assert any(line.startswith("myLayer: Type: php-app:") for line in report)
        assert any(line.startswith("DBLayer: Attributes.MysqlRootPassword:") for line in report)
    assert outputs[0] == outputs[1]
    stack = outputs[0]
    assert stack["name"] == "php-sample-app"  # AWS::StackName: the template's file name
    assert [layer["name"] for layer in stack["layers"]] == ["php-app", "db-layer"]
    assert [i["hostname"] for i in stack["layers"][0]["instances"]] == ["php-app1", "php-app2"]
    assert stack["apps"][0]["source"]["revision"] == "version2"
    (tmp_path / "stack.yml").write_text(yaml.safe_dump(stack))
    planned = opsflow("stack", "plan", "stack.yml", cwd=tmp_path)
    no_traceback(planned)
    assert planned.returncode == 0, planned.stderr


@needs_sample
def test_on_ec2_what_needs_a_person_is_a_placeholder_the_loader_refuses_by_field(
    tmp_path: Path,
) -> None:
    out = tmp_path / "stack.yml"
    done = opsflow(
        "import",
        "cloudformation",
        str(SAMPLE / "php-sample-app.template.yaml"),
        "--region",
        "us-east-1",
        "-o",
        str(out),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "<FILL IN: " in out.read_text()
    with pytest.raises(SpecError) as refused:
        load_stack_file(out, Sealer.throwaway())
    assert refused.value.problems, "each placeholder is named"
    assert all("<FILL IN: " in problem for problem in refused.value.problems)
    assert any(problem.startswith("ec2.") for problem in refused.value.problems)
    planned = opsflow("stack", "plan", str(out), cwd=tmp_path)
    assert planned.returncode == 2 and "must be replaced" in planned.stderr


def test_template_values_parameters_conditions_and_a_secret_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("s3cr3t-token\n")
    out = tmp_path / "shop.yml"
    done = opsflow(
        "import",
        "cloudformation",
        str(SHOP),
        "--provider",
        "local",
        "--parameter",
        "Env=production",
        "--parameter",
        "ApiToken=@token",
        "--stack-name",
        "shop",
        "-o",
        str(out),
        "--report",
        str(tmp_path / "report.txt"),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert out.stat().st_mode & 0o777 == 0o600, "it holds a secret until it is loaded"
    stack = yaml.safe_load(out.read_text())
    assert stack["name"] == "shop-production"  # !Sub "${AWS::StackName}-${Env}"
    assert stack["custom_json"] == {"shop": {"greeting": "hello", "env": "production"}}
    assert stack["instances"] == [{"hostname": "web1", "layers": ["web", "cache"]}]
    assert [i["hostname"] for i in stack["layers"][0]["instances"]] == ["web2"]  # IsProduction
    token = stack["apps"][0]["environment"]["API_TOKEN"]
    assert token == {"value": "s3cr3t-token", "secure": True}
    report = (tmp_path / "report.txt").read_text()
    assert "s3cr3t-token" not in report
    spec = load_stack_file(out, Sealer.throwaway())  # no placeholder: it loads, sealed
    assert "s3cr3t-token" not in spec.model_dump_json()


def test_a_secret_is_never_printed_to_standard_output(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("s3cr3t-token")
    done = opsflow(
        "import",
        "cloudformation",
        str(SHOP),
        "--provider",
        "local",
        "--parameter",
        "ApiToken=@token",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "s3cr3t-token" not in done.stdout + done.stderr
    value = yaml.safe_load(done.stdout)["apps"][0]["environment"]["API_TOKEN"]["value"]
    assert value.startswith("<FILL IN: a secret given with --parameter is not printed")
    assert "(output): apps[0].environment.API_TOKEN.value:" in done.stderr


def test_an_existing_output_file_needs_force(tmp_path: Path) -> None:
    out = tmp_path / "stack.yml"
    out.write_text("mine\n")
    args = ["import", "cloudformation", str(SHOP), "--provider", "local", "-o", str(out)]
    refused = opsflow(*args, cwd=tmp_path)
    assert refused.returncode == 2 and "exists; add --force" in refused.stderr
    assert out.read_text() == "mine\n"
    replaced = opsflow(*args, "--force", cwd=tmp_path)
    assert replaced.returncode == 0, replaced.stderr
    assert yaml.safe_load(out.read_text())["name"] == "shop-staging"


def test_source_replaces_the_cookbooks_by_a_local_directory(tmp_path: Path) -> None:
    (tmp_path / "cookbooks").mkdir()
    done = opsflow(
        "import",
        "cloudformation",
        str(SHOP),
        "--provider",
        "local",
        "--source",
        "cookbooks=cookbooks",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(done.stdout)["cookbooks"] == {"source": str(tmp_path / "cookbooks")}


@pytest.mark.parametrize(
    ("args", "files", "expected"),
    [
        (["cloudformation", "bad.yml"], {"bad.yml": "a: [\n"}, "bad.yml: line"),
        (["cloudformation", "none.json"], {"none.json": "{"}, "none.json: "),
        (
            ["cloudformation", "plain.yml"],
            {"plain.yml": "Resources: {Bucket: {Type: AWS::S3::Bucket}}\n"},
            "no AWS::OpsWorks",
        ),
        (["cloudformation", str(SHOP), "--parameter", "Nope=1"], {}, "no parameter Nope"),
        (["cloudformation", str(SHOP), "--parameter", "Env"], {}, "is not KEY=VALUE"),
        (["cloudformation", str(SHOP), "--parameter", "Env=@missing"], {}, "cannot read"),
        (["cloudformation", str(SHOP), "--parameter", "Env=qa"], {}, "Env"),
        (["cloudformation", str(SHOP), "--source", "nope=."], {}, "--source nope"),
        (["cloudformation", str(SHOP), "--source", "cookbooks=missing"], {}, "not a directory"),
        (["cloudformation", "missing.yml"], {}, "missing.yml"),
        (["describe", "d.json"], {"d.json": json.dumps({"Foo": []})}, "d.json: expected"),
        (["describe", "d.json"], {"d.json": json.dumps({"Layers": [{"LayerId": "x"}]})}, "d.json"),
    ],
)
def test_bad_input_exits_2_naming_the_problem_and_writes_nothing(
    tmp_path: Path, args: list[str], files: dict[str, str], expected: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    out = tmp_path / "out.yml"
    done = opsflow("import", *args, "-o", str(out), "--report", "report.txt", cwd=tmp_path)
    no_traceback(done)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert expected in done.stderr
    assert not out.exists() and not (tmp_path / "report.txt").exists()


def test_describe_output_becomes_a_stack_file(tmp_path: Path) -> None:
    stack_id = "11111111-2222-3333-4444-555555555555"
    layer_id = "aaaaaaaa-2222-3333-4444-555555555555"
    files = {
        "stacks.json": {
            "Stacks": [
                {
                    "StackId": stack_id,
                    "Name": "Legacy Shop",
                    "Region": "us-west-2",
                    "CustomJson": '{"shop": {"tier": "gold"}}',
                    "ConfigurationManager": {"Name": "Chef", "Version": "12"},
                    "UseCustomCookbooks": False,
                }
            ]
        },
        "layers.json": {
            "Layers": [
                {
                    "StackId": stack_id,
                    "LayerId": layer_id,
                    "Type": "custom",
                    "Name": "App",
                    "Shortname": "app",
                    "CustomRecipes": {"Setup": ["shop::setup"]},
                    "EnableAutoHealing": True,
                }
            ]
        },
        "instances.json": {
            "Instances": [
                {
                    "StackId": stack_id,
                    "InstanceId": "i-guid-1",
                    "LayerIds": [layer_id],
                    "Hostname": "app1",
                    "InstanceType": "t3.small",
                    "Status": "online",
                }
            ]
        },
    }
    for name, body in files.items():
        (tmp_path / name).write_text(json.dumps(body))
    # any order
    done = opsflow(
        "import", "describe", "instances.json", "stacks.json", "layers.json",
        "--provider", "local", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    stack = yaml.safe_load(done.stdout)
    assert stack["name"] == "legacy-shop"
    assert "legacy-shop" in done.stderr  # the name made valid is a line of the report
    assert stack["custom_json"] == {"shop": {"tier": "gold"}}
    assert stack["chef"] == {"version": "12"}
    assert stack["layers"][0]["instances"] == [{"hostname": "app1"}]


def test_the_region_given_is_the_stack_s_when_the_input_has_none(tmp_path: Path) -> None:
    """A template's OpsWorks stack lives in the CloudFormation stack's region (AWS::Region),
    which only --region tells."""
    done = opsflow("import", "cloudformation", str(SHOP), "--region", "eu-west-1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(done.stdout)["region"] == "eu-west-1"
    without = opsflow("import", "cloudformation", str(SHOP), cwd=tmp_path)
    assert yaml.safe_load(without.stdout)["region"].startswith("<FILL IN: ")


def test_a_secret_without_a_value_is_one_report_line_saying_why_and_what(tmp_path: Path) -> None:
    done = opsflow("import", "cloudformation", str(SHOP), "--provider", "local", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if "Environment[1].Value" in line]
    assert "NoEcho parameter ApiToken has no default" in line  # why (the template's reader)
    assert "the file holds a placeholder" in line  # what (the mapping)
