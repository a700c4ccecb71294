"""Saved `aws opsworks describe-*` output read into one OpsWorksStack.

The files are what the AWS CLI printed, any subset in any order: each one is known by its
top-level key (`Stacks`, `Layers`, ...), its items are tied together by their ids
(StackId, LayerId(s), InstanceId, an RDS instance's ARN). What cannot be tied to the one
stack being imported is reported and left out; nothing is dropped silently.

OpsWorks never printed secrets: it printed `*****FILTERED*****` in their place (secure
app environment values, source passwords and SSH keys, RDS passwords, some layer
attributes). Such a value is left out of the fields (an environment entry keeps
`Secure: true`) and reported; the mapping puts a placeholder where one is needed.

Exactly one stack is imported. When the describe-stacks output lists several (as
`aws opsworks describe-stacks` without `--stack-ids` does, and the API that could narrow
it is gone), the stack that the other files' layers, instances, apps, load balancers or
RDS instances belong to is taken, and the others are reported; when that does not single
one out, the files are refused.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opsflow.errors import SpecError
from opsflow.importing.model import OpsWorksStack, Report, Resource

FILTERED = "*****FILTERED*****"
"""What OpsWorks printed in place of a secret (API reference: EnvironmentVariable, Source,
RdsDbInstance, Layer.Attributes)."""

_QUIET_KEYS = frozenset({"ResponseMetadata"})
"""Top-level keys of a saved response that carry nothing of the stack (boto3 adds it)."""


@dataclass(frozen=True)
class _Kind:
    key: str  # the top-level key of the command's output
    command: str  # `aws opsworks COMMAND` printed it
    id_field: str  # what ties an item to the others
    label: str  # how a report line names an item
    name_field: str | None = None  # a readable name, when the item has one


STACKS = _Kind("Stacks", "describe-stacks", "StackId", "stack", "Name")
SUMMARY = _Kind("StackSummary", "describe-stack-summary", "StackId", "stack", "Name")
LAYERS = _Kind("Layers", "describe-layers", "LayerId", "layer", "Shortname")
INSTANCES = _Kind("Instances", "describe-instances", "InstanceId", "instance", "Hostname")
APPS = _Kind("Apps", "describe-apps", "AppId", "app", "Shortname")
ELBS = _Kind(
    "ElasticLoadBalancers", "describe-elastic-load-balancers", "ElasticLoadBalancerName", "elb"
)
RDS = _Kind(
    "RdsDbInstances",
    "describe-rds-db-instances",
    "RdsDbInstanceArn",
    "rds",
    "DbInstanceIdentifier",
)
TIME_BASED = _Kind(
    "TimeBasedAutoScalingConfigurations",
    "describe-time-based-auto-scaling",
    "InstanceId",
    "time-based scaling of instance",
)
LOAD_BASED = _Kind(
    "LoadBasedAutoScalingConfigurations",
    "describe-load-based-auto-scaling",
    "LayerId",
    "load-based scaling of layer",
)
USERS = _Kind("UserProfiles", "describe-user-profiles", "IamUserArn", "user", "SshUsername")
PERMISSIONS = _Kind("Permissions", "describe-permissions", "IamUserArn", "permission of")
VOLUMES = _Kind("Volumes", "describe-volumes", "VolumeId", "volume", "Name")

KINDS: tuple[_Kind, ...] = (
    STACKS,
    SUMMARY,
    LAYERS,
    INSTANCES,
    APPS,
    ELBS,
    RDS,
    TIME_BASED,
    LOAD_BASED,
    USERS,
    PERMISSIONS,
    VOLUMES,
)
_BY_KEY = {kind.key: kind for kind in KINDS}

# Kinds whose StackId says which stack the files are about (permissions are not: one
# user's permissions list every stack the user may reach).
_OWNED = (LAYERS, INSTANCES, APPS, ELBS, RDS)


@dataclass
class _Item:
    kind: _Kind
    file: str
    fields: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.fields[self.kind.id_field])

    @property
    def key(self) -> tuple[str, str]:
        # A permission is one user's on one stack; every other item is unique by its id.
        stack = self.fields.get("StackId", "") if self.kind is PERMISSIONS else ""
        return (self.id, str(stack))

    @property
    def source(self) -> str:
        name = self.fields.get(self.kind.name_field) if self.kind.name_field else None
        if isinstance(name, str) and name and name != self.id:
            return f"{self.kind.label} {name} ({self.id})"
        return f"{self.kind.label} {self.id}"


@dataclass
class _Found:
    """What the files hold, by kind, each item once (the first file's wins)."""

    items: dict[_Kind, list[_Item]] = field(default_factory=dict)

    def of(self, kind: _Kind) -> list[_Item]:
        return self.items.get(kind, [])


def read_describe(documents: Sequence[tuple[str, Any]]) -> tuple[OpsWorksStack, Report]:
    """The one stack in `documents` ((file name, parsed JSON) pairs), and the report of
    what was not carried over. Raises SpecError for a file of an unknown shape, for
    several stacks that cannot be told apart, and for files that name no stack."""
    report = Report()
    found = _collect(documents, report)
    stack_id = _the_stack(found, documents)
    return _Assembly(found, stack_id, report).build(), report


def _collect(documents: Sequence[tuple[str, Any]], report: Report) -> _Found:
    found = _Found()
    seen: dict[tuple[_Kind, tuple[str, str]], _Item] = {}
    for file, document in documents:
        for item in _items_of(file, document, report):
            first = seen.get((item.kind, item.key))
            if first is None:
                seen[(item.kind, item.key)] = item
                found.items.setdefault(item.kind, []).append(item)
            elif first.fields != item.fields:
                report.add(
                    item.source,
                    item.kind.id_field,
                    f"also in {file} with other fields: the one in {first.file} is kept",
                )
    return found


def _items_of(file: str, document: Any, report: Report) -> list[_Item]:
    expected = (
        "the JSON that `aws opsworks describe-*` prints: an object with one of the keys "
        + ", ".join(kind.key for kind in KINDS)
    )
    if not isinstance(document, dict):
        raise SpecError(file, [f"expected {expected}; found {_json_type(document)}"])
    known = [key for key in document if key in _BY_KEY]
    if not known:
        keys = ", ".join(str(key) for key in document) or "none"
        raise SpecError(file, [f"expected {expected}; found the keys: {keys}"])
    items: list[_Item] = []
    for key, value in document.items():
        if key in _QUIET_KEYS:
            continue
        kind = _BY_KEY.get(key)
        if kind is None:
            report.add(file, str(key), "not a key of OpsWorks describe-* output; not read")
            continue
        # describe-stack-summary prints one object; every other command a list of them.
        listed = [value] if kind is SUMMARY and isinstance(value, dict) else value
        what = "an object" if kind is SUMMARY else "a list of objects"
        if not isinstance(listed, list):
            raise SpecError(
                file,
                [
                    f"{key}: expected {what} (`aws opsworks {kind.command}` output); "
                    f"found {_json_type(value)}"
                ],
            )
        for index, entry in enumerate(listed):
            where = key if kind is SUMMARY else f"{key}[{index}]"
            if not isinstance(entry, dict):
                raise SpecError(
                    file,
                    [
                        f"{where}: expected an object (`aws opsworks {kind.command}` "
                        f"output); found {_json_type(entry)}"
                    ],
                )
            ident = entry.get(kind.id_field)
            if not isinstance(ident, str) or not ident:
                raise SpecError(
                    file,
                    [
                        f"{where}.{kind.id_field}: expected the {kind.label}'s id "
                        f"(a string); found {_json_type(ident)}"
                    ],
                )
            items.append(_Item(kind, file, copy.deepcopy(entry)))
    return items


def _json_type(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _stack_ids(items: Iterable[_Item]) -> dict[str, list[_Item]]:
    """Each StackId the items name, with the items naming it, in order of appearance."""
    by_id: dict[str, list[_Item]] = {}
    for item in items:
        stack = item.fields.get("StackId")
        if isinstance(stack, str) and stack:
            by_id.setdefault(stack, []).append(item)
    return by_id


def _the_stack(found: _Found, documents: Sequence[tuple[str, Any]]) -> str:
    """The id of the one stack the files are about."""
    described = _stack_ids([*found.of(STACKS), *found.of(SUMMARY)])
    owners = _stack_ids(item for kind in _OWNED for item in found.of(kind))
    if len(described) == 1:
        return next(iter(described))
    if len(described) > 1:
        named = [stack for stack in described if stack in owners]
        if len(named) == 1:
            return named[0]
        raise _several(described)
    if len(owners) == 1:
        return next(iter(owners))
    if len(owners) > 1:
        raise _several(owners)
    files = ", ".join(file for file, _ in documents) or "(no files)"
    raise SpecError(
        files,
        [
            "no stack: none of these files names a StackId (give the output of `aws "
            "opsworks describe-stacks`, or of describe-layers, describe-instances or "
            "describe-apps of the stack)"
        ],
    )


def _several(by_id: dict[str, list[_Item]]) -> SpecError:
    files = sorted({item.file for items in by_id.values() for item in items})
    stacks = []
    for stack, items in by_id.items():
        names = (item.fields.get("Name") for item in items if item.kind in (STACKS, SUMMARY))
        name = next((n for n in names if isinstance(n, str) and n), None)
        stacks.append(f"{stack} ({name})" if name else stack)
    return SpecError(
        ", ".join(files),
        [f"several stacks: {', '.join(stacks)}; import one stack at a time"],
    )


class _Assembly:
    """Ties the items of one stack together; everything else goes to the report."""

    def __init__(self, found: _Found, stack_id: str, report: Report) -> None:
        self.found = found
        self.stack_id = stack_id
        self.report = report
        self.elsewhere: set[str] = set()  # ids of items of another stack, left out

    def build(self) -> OpsWorksStack:
        stack = self._stack()
        layers = self._owned(LAYERS)
        self._merge(LOAD_BASED, layers, "layer", "LoadBasedAutoScaling", self._thresholds)
        layer_ids = {layer.id for layer in layers}
        instances = self._owned(INSTANCES)
        for instance in instances:
            self._check_layers(instance, layer_ids)
        self._merge(TIME_BASED, instances, "instance", "TimeBasedAutoScaling", self._schedule)
        rds = self._owned(RDS)
        apps = self._owned(APPS)
        for app in apps:
            self._check_data_sources(app, {db.id for db in rds})
        elbs = self._owned(ELBS)
        for elb in elbs:
            self._check_layer(elb, layer_ids)
        return OpsWorksStack(
            stack=stack,
            layers=layers,
            instances=instances,
            apps=apps,
            elb_attachments=elbs,
            volumes=self._volumes({instance.id for instance in instances}),
            users=self._users(),
            rds_db_instances=rds,
        )

    def _resource(self, item: _Item) -> Resource:
        return Resource(id=item.id, source=item.source, fields=self._unfiltered(item))

    def _unfiltered(self, item: _Item) -> dict[str, Any]:
        dropped: list[str] = []
        fields = _strip_object(item.fields, "", dropped)
        for path in dropped:
            self.report.add(
                item.source,
                path,
                f"OpsWorks printed {FILTERED} in place of this secret: the value is not in "
                "the files; give it in the stack file",
            )
        return fields

    def _stack(self) -> Resource:
        for kind in (STACKS, SUMMARY):
            for item in self.found.of(kind):
                if item.fields.get("StackId") != self.stack_id:
                    self.elsewhere.add(item.id)
                    self.report.add(
                        item.source, "StackId", "another stack; left out (one stack at a time)"
                    )
        described = [i for i in self.found.of(STACKS) if i.id == self.stack_id]
        summary = [i for i in self.found.of(SUMMARY) if i.id == self.stack_id]
        if described:
            return self._resource(described[0])
        if summary:
            fields = {
                k: summary[0].fields[k]
                for k in ("StackId", "Name", "Arn")
                if k in summary[0].fields
            }
            resource = Resource(id=self.stack_id, source=summary[0].source, fields=fields)
            self.report.add(
                resource.source,
                "StackId",
                "no describe-stacks output: only the stack summary's name and ARN are known",
            )
        else:
            resource = Resource(
                id=self.stack_id, source=f"stack {self.stack_id}", fields={"StackId": self.stack_id}
            )
            self.report.add(
                resource.source,
                "Name",
                "no describe-stacks output: the stack's name and settings are not known",
            )
        return resource

    def _owned(self, kind: _Kind) -> list[Resource]:
        """The items of `kind` in this stack; those of another stack are reported."""
        kept: list[Resource] = []
        for item in self.found.of(kind):
            stack = item.fields.get("StackId")
            if stack is not None and stack != self.stack_id:
                self.elsewhere.add(item.id)
                self.report.add(
                    item.source,
                    "StackId",
                    f"in stack {stack}, not {self.stack_id}; left out (one stack at a time)",
                )
                continue
            kept.append(self._resource(item))
        return kept

    def _merge(
        self,
        kind: _Kind,
        into: list[Resource],
        what: str,
        prop: str,
        value: Callable[[_Item], Any],
    ) -> None:
        """Each item of `kind` into its resource's `prop`, matched by id (time-based
        scaling into its instance, load-based into its layer)."""
        by_id = {resource.id: resource for resource in into}
        for item in self.found.of(kind):
            resource = by_id.get(item.id)
            if resource is None:
                self._unmatched(item, kind.id_field, what)
            elif (merged := value(item)) is not None:
                resource.fields[prop] = merged

    def _thresholds(self, item: _Item) -> dict[str, Any]:
        fields = self._unfiltered(item)
        fields.pop("LayerId", None)
        return fields

    def _schedule(self, item: _Item) -> dict[str, Any] | None:
        # The API's WeeklyAutoScalingSchedule is CloudFormation's TimeBasedAutoScaling.
        schedule = item.fields.get("AutoScalingSchedule")
        if isinstance(schedule, dict):
            return copy.deepcopy(schedule)
        self.report.add(item.source, "AutoScalingSchedule", "no weekly schedule; nothing merged")
        return None

    def _unmatched(self, item: _Item, prop: str, what: str) -> None:
        if item.id in self.elsewhere:
            message = f"the {what} is in another stack; left out"
        else:
            message = f"{what} {item.id} is in none of the files; left out"
        self.report.add(item.source, prop, message)

    def _check_layers(self, instance: Resource, layer_ids: set[str]) -> None:
        named = instance.fields.get("LayerIds")
        if not isinstance(named, list) or not named:
            self.report.add(instance.source, "LayerIds", "the instance is in no layer")
            return
        for layer in named:
            if not _among(layer, layer_ids):
                self.report.add(
                    instance.source, "LayerIds", f"layer {layer} is in none of the files"
                )

    def _check_layer(self, elb: Resource, layer_ids: set[str]) -> None:
        layer = elb.fields.get("LayerId")
        if layer is None:
            self.report.add(elb.source, "LayerId", "the load balancer is attached to no layer")
        elif not _among(layer, layer_ids):
            self.report.add(elb.source, "LayerId", f"layer {layer} is in none of the files")

    def _check_data_sources(self, app: Resource, rds_arns: set[str]) -> None:
        sources = app.fields.get("DataSources")
        for index, source in enumerate(sources if isinstance(sources, list) else []):
            if not isinstance(source, dict) or source.get("Type") != "RdsDbInstance":
                continue
            arn = source.get("Arn")
            if not _among(arn, rds_arns):
                self.report.add(
                    app.source,
                    f"DataSources[{index}].Arn",
                    f"RDS DB instance {arn} is in none of the files "
                    "(no describe-rds-db-instances output for it)",
                )

    def _volumes(self, instance_ids: set[str]) -> list[Resource]:
        # describe-volumes prints no StackId: a volume belongs by its instance.
        kept: list[Resource] = []
        for item in self.found.of(VOLUMES):
            instance = item.fields.get("InstanceId")
            if _among(instance, self.elsewhere):
                self.report.add(
                    item.source, "InstanceId", "the instance is in another stack; left out"
                )
                continue
            if instance is not None and not _among(instance, instance_ids):
                self.report.add(
                    item.source, "InstanceId", f"instance {instance} is in none of the files"
                )
            kept.append(self._resource(item))
        return kept

    def _users(self) -> list[Resource]:
        """User profiles are the account's; the stack's permissions say whose are this
        stack's, and carry AllowSsh, AllowSudo and Level into the user's fields."""
        permissions: dict[str, _Item] = {}
        for item in self.found.of(PERMISSIONS):
            if item.fields.get("StackId") == self.stack_id:
                permissions[item.id] = item
            else:
                self.report.add(
                    item.source,
                    "StackId",
                    f"a permission on stack {item.fields.get('StackId')}; left out",
                )
        profiles = self.found.of(USERS)
        if profiles and not self.found.of(PERMISSIONS):
            self.report.add(
                "UserProfiles",
                "Permissions",
                "no describe-permissions output: every user profile is kept, without "
                "AllowSsh/AllowSudo (they are the stack's permissions)",
            )
        users: list[Resource] = []
        for item in profiles:
            permission = permissions.pop(item.id, None)
            if permission is None and self.found.of(PERMISSIONS):
                self.report.add(item.source, "Permissions", "no permission on this stack; left out")
                continue
            user = self._resource(item)
            if permission is not None:
                user.fields.update(_permission_fields(permission))
            users.append(user)
        for permission in permissions.values():
            user = Resource(
                id=permission.id,
                source=f"user {permission.id}",
                fields={"IamUserArn": permission.id, **_permission_fields(permission)},
            )
            self.report.add(
                user.source,
                "SshUsername",
                "a permission on this stack but no describe-user-profiles output for the "
                "user: its SSH user name and key are not known",
            )
            users.append(user)
        return users


def _among(value: Any, ids: set[str]) -> bool:
    """Whether `value` (anything a file held) is one of `ids`."""
    return isinstance(value, str) and value in ids


def _permission_fields(permission: _Item) -> dict[str, Any]:
    return {k: v for k, v in permission.fields.items() if k not in ("StackId", "IamUserArn")}


def _strip_object(value: dict[str, Any], path: str, dropped: list[str]) -> dict[str, Any]:
    """`value` without the secrets OpsWorks filtered; their dotted paths go to `dropped`.
    A list entry with a `Key` (an environment variable) is named by its key."""
    kept: dict[str, Any] = {}
    for key, inner in value.items():
        inner_path = f"{path}.{key}" if path else str(key)
        if inner == FILTERED:
            dropped.append(inner_path)
        else:
            kept[key] = _strip(inner, inner_path, dropped)
    return kept


def _strip(value: Any, path: str, dropped: list[str]) -> Any:
    if isinstance(value, dict):
        return _strip_object(value, path, dropped)
    if not isinstance(value, list):
        return value
    entries: list[Any] = []
    for index, inner in enumerate(value):
        # By index, as the mapping names it (`Environment[0].Value`), so the two report
        # lines about one filtered secret join into one.
        inner_path = f"{path}[{index}]"
        if inner == FILTERED:
            dropped.append(inner_path)
        else:
            entries.append(_strip(inner, inner_path, dropped))
    return entries
