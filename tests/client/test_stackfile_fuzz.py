"""A mutation fuzz of the stack-file loader: valid stack files (the examples and a few
that use every path field) with values changed, keys deleted or junk added either load
or are refused with opsflow's own error, one line per problem naming the field; never
another exception (a ValueError from a NUL byte, an OSError from a long name, ...)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from client.stackfile import load_stack_file
from opsflow.errors import InvalidInput, SpecError
from opsflow.secrets import new_key
from opsflow.spec import StackSpec
from tests.helpers import write_private_key

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# Stack files beside the examples' own, for the fields the examples do not use.
EXTRA_STACKS = {
    "apps": """\
name: store
cookbooks: {source: ./cookbooks}
layers:
  - name: web
    recipes: {setup: [web::setup]}
    instances: [{hostname: web1}, {hostname: web2, scaling: load}]
    load_based_scaling:
      up: {cpu: 80}
      down: {cpu: 20}
apps:
  - name: store
    layers: [web]
    source: {source: ./app}
    deploy_to: /srv/store
    environment:
      PLAIN: hello
      SECRET: {value: s3cret, secure: true}
    health_check: {url: "http://{private_ip}/", deadline: 30}
""",
    "registered": """\
name: hosts
provider: registered
layers:
  - name: web
    instances:
      - hostname: web1
        ssh: {host: 10.0.0.5, user: deploy, key_file: ./deploy_key, root: /opt/of, sudo: true}
""",
    "ec2": """\
name: cloud
provider: ec2
region: us-east-1
ec2: {instance_type: t3.micro}
layers:
  - name: web
    instances: [{hostname: web1}]
rds:
  - name: main
    identifier: shop-db-1
    username: admin
    password: {value: pw, secure: true}
apps:
  - name: store
    layers: [web]
    data_source: main
""",
}

# A problem of the whole file (YAML syntax, not a mapping), not of one field.
_FILE_PROBLEM = re.compile(r"^(line \d+, column \d+: |the file must be a YAML mapping)")


def _names_a_field(problem: str, document: Any) -> bool:
    """`problem` starts with a field path (`layers[0].name: `, `region, ec2: `) whose first
    key is one of the stack's own or one the file holds (an unknown key is named)."""
    roots = set(StackSpec.model_fields) | set(document if isinstance(document, dict) else ())
    return bool(_FILE_PROBLEM.match(problem)) or any(
        problem.startswith(str(root)) and problem[len(str(root)) :][:1] in (".", "[", ":", ",")
        for root in roots
    )


@pytest.fixture(scope="module")
def stack_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Path]]:
    """Each base stack file in a directory of its own, copied from examples/ or written."""
    top = tmp_path_factory.mktemp("fuzz")
    files = []
    for example in sorted(EXAMPLES.glob("*/stack.yml")):
        directory = shutil.copytree(example.parent, top / example.parent.name, symlinks=True)
        files.append(Path(directory) / "stack.yml")
    for name, text in EXTRA_STACKS.items():
        directory = top / name
        (directory / "cookbooks" / "web").mkdir(parents=True)
        (directory / "cookbooks" / "web" / "setup.sh").write_text("true\n")
        (directory / "app").mkdir()
        write_private_key(directory / "deploy_key")
        (directory / "stack.yml").write_text(text)
        files.append(directory / "stack.yml")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPSFLOW_SECRET_KEY", new_key().decode())
        for file in files:
            assert isinstance(load_stack_file(file), StackSpec), f"{file} must be valid"
        yield files


# ---- mutations -------------------------------------------------------------------------

# Paths that name the machine's own root are left out: a walk of the whole disk for
# recipes is what the user asked for, but no fast test.
_strings = st.one_of(
    st.text(max_size=20).filter(lambda s: os.path.normpath(s) != "/"),
    st.text(max_size=8).map(lambda s: f"./{s}\0{s}"),
    st.sampled_from(["x" * 5000, "/".join(["y" * 200] * 30), "~nobody-here/x", "../" * 50 + "no"]),
    st.sampled_from(["", " ", ".", "..", "/no", "~", "\0", "\ud7ff\u200b\ufeff", "é/ü/ß"]),
)
_scalars = st.one_of(
    _strings,
    st.booleans(),
    st.none(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([10**400, -(10**400), 0, -1, 65536]),
    st.floats(allow_nan=True, allow_infinity=True),
)
_junk = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every value inside `node` (keys of mappings, indexes of lists)."""
    children = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in children:
        yield (*prefix, key)
        if isinstance(value, dict | list):
            yield from _paths(value, (*prefix, key))


# Keys whose values reach the file system (or git): mutated more often than the others.
PATH_KEYS = frozenset({"source", "key_file", "git", "archive", "path", "root", "deploy_to"})


def _mutate(document: dict[str, Any], data: st.DataObject) -> None:
    """Change one value: replace it with junk, delete it, grow it, or add junk beside it."""
    paths = sorted(_paths(document), key=repr)
    path_fields = [path for path in paths if path[-1] in PATH_KEYS]
    on_a_path_field = data.draw(st.booleans(), label="a path field")
    if path_fields and on_a_path_field:
        path = data.draw(st.sampled_from(path_fields), label="path")
        _set(document, path, data.draw(_strings, label="path value"))
        return
    path = data.draw(st.sampled_from(paths), label="path")
    parent: Any = document
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    how = data.draw(st.sampled_from(["replace", "delete", "add", "grow"]), label="how")
    if how == "replace":
        parent[key] = data.draw(_junk, label="value")
    elif how == "delete":
        del parent[key]
    elif how == "add" and isinstance(parent, dict):
        parent[data.draw(st.text(min_size=1, max_size=8), label="new key")] = data.draw(_junk)
    elif how == "add":
        parent.insert(key, data.draw(_junk, label="new item"))
    else:
        parent[key] = _grown(parent[key])


def _grown(value: Any) -> Any:
    """The same value, grown: a long string, a huge number, a deep nest."""
    if isinstance(value, str):
        return value * 1000 or "z" * 5000
    if isinstance(value, int) and not isinstance(value, bool):
        return value * 10**40
    return [[[[value]]]]


def _set(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    parent: Any = document
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_a_mutated_stack_file_loads_or_is_refused_naming_the_field(
    stack_files: list[Path], data: st.DataObject
) -> None:
    base = data.draw(st.sampled_from(stack_files), label="stack file")
    document = yaml.safe_load(base.read_text())
    for _ in range(data.draw(st.integers(min_value=1, max_value=3), label="mutations")):
        if document:
            _mutate(document, data)
    mutated = base.with_name("mutated.yml")
    mutated.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPSFLOW_SECRET_KEY", new_key().decode())
        try:
            load_stack_file(mutated)
        except SpecError as err:
            assert err.problems, "a refusal says why"
            for problem in err.problems:
                assert _names_a_field(problem, document), problem
        except InvalidInput as err:
            assert str(err)
    assert os.path.exists(base), "the base file is never touched"
