"""Reading one OpsWorks resource for the mapping: each field taken is accounted for, and
what is left at the end is reported (nothing is dropped silently); values as a template
writes them (`'true'`, `'10'`) read as booleans and numbers; names made valid for opsflow.
"""

from __future__ import annotations

import json
import re
from typing import Any

from opsflow.importing.model import Report, Resource

# What describe-* output carries that says nothing about how to build the stack: ids,
# times, ARNs and the state of the moment. Left out of the report; any other field that
# is not taken is a report line.
IGNORED = frozenset(
    {
        "StackId",
        "LayerId",
        "InstanceId",
        "AppId",
        "Arn",
        "CreatedAt",
        # describe-instances: the instance's state when the output was saved
        "Status",
        "Ec2InstanceId",
        "PrivateIp",
        "PrivateDns",
        "PublicIp",
        "PublicDns",
        "ElasticIp",
        "ReportedOs",
        "ReportedAgentVersion",
        "LastServiceErrorId",
        "InfrastructureClass",
        "RegisteredBy",
        "Platform",
        "RootDeviceVolumeId",
        "SecurityGroupIds",
        "SshHostDsaKeyFingerprint",
        "SshHostRsaKeyFingerprint",
        "EcsClusterArn",
        "EcsContainerInstanceArn",
        "InstanceProfileArn",
        # describe-layers: what OpsWorks filled in itself
        "DefaultRecipes",
        "DefaultSecurityGroupNames",
        # describe-rds-db-instances: the endpoint, read again from AWS at apply
        "Address",
        "Engine",
        "MissingOnRds",
        # describe-elastic-load-balancers: the balancer's state
        "DnsName",
        "Ec2InstanceIds",
        "AvailabilityZones",
        "SubnetIds",
    }
)

SECRET_WORDS = ("password", "secret", "sshkey", "privatekey", "token")
FILTERED = "*****FILTERED*****"
"""What describe-* output shows in place of a secret."""


def is_secret(name: str) -> bool:
    """A field whose value must never be written out in plain text, by its name
    (`MysqlRootPassword`, `DbPassword`, `SshKey`; not `MysqlRootPasswordUbiquitous`)."""
    lowered = name.lower().replace("_", "")
    return lowered.endswith(SECRET_WORDS)


class Fields:
    """One resource's fields, taken one by one; `finish` reports those left."""

    def __init__(
        self,
        resource: Resource,
        report: Report,
        *,
        ignored: frozenset[str] = IGNORED,
        prefix: str = "",
    ) -> None:
        self.where = resource.source
        self.prefix = prefix
        self._left = dict(resource.fields)
        self._report = report
        self._ignored = ignored

    def nested(self, key: str, value: dict[str, Any], index: int | None = None) -> Fields:
        """The fields of a structure inside this one (`CustomCookbooksSource`, a volume),
        reported under the dotted property (`VolumeConfigurations[0].Iops`)."""
        inner = Resource(id=self.where, source=self.where, fields=value)
        at = f"[{index}]" if index is not None else ""
        return Fields(inner, self._report, ignored=self._ignored, prefix=f"{self.prefix}{key}{at}.")

    def note(self, prop: str, message: str) -> None:
        self._report.add(self.where, (self.prefix + prop).rstrip("."), message)

    def note_missing(self, prop: str, message: str) -> None:
        """Like `note`, for a value the input lacks: the reader that found it missing (a
        NoEcho parameter without a value, a filtered secret) may have said so already for
        the same property, and then its line joins this one: one line, why and what."""
        path = (self.prefix + prop).rstrip(".")
        for line in self._report.lines:
            if (line.where, line.property) == (self.where, path):
                line.message = f"{line.message}; {message}"
                return
        self._report.add(self.where, path, message)

    def has(self, key: str) -> bool:
        return self._left.get(key) is not None

    def take(self, key: str) -> Any:
        """The field's value (None if absent); taken, so not reported at the end."""
        return self._left.pop(key, None)

    def text(self, key: str) -> str | None:
        value = self.take(key)
        if value is None or isinstance(value, str):
            return value or None
        if isinstance(value, bool | int | float):
            return str(value).lower() if isinstance(value, bool) else str(value)
        self.note(key, f"{_kind(value)} where text was expected: not carried over")
        return None

    def flag(self, key: str) -> bool | None:
        return as_flag(self.take(key), self, key)

    def number(self, key: str) -> float | None:
        return as_number(self.take(key), self, key)

    def mapping(self, key: str) -> dict[str, Any] | None:
        value = self.take(key)
        if value is None or isinstance(value, dict):
            return value
        self.note(key, f"{_kind(value)} where a mapping was expected: not carried over")
        return None

    def items(self, key: str) -> list[Any]:
        value = self.take(key)
        if value is None:
            return []
        if isinstance(value, list):
            return value
        self.note(key, f"{_kind(value)} where a list was expected: not carried over")
        return []

    def drop(self, key: str, why: str) -> None:
        """Report a field opsflow does not carry over (a secret's value never shown)."""
        value = self.take(key)
        if value is None or value == "" or value == [] or value == {}:
            return
        self.note(key, f"not carried over: {why}")

    def drop_all(self, reasons: dict[str, str]) -> None:
        """`drop` each field of `reasons` (field -> why opsflow does not carry it)."""
        for key, why in reasons.items():
            self.drop(key, why)

    def discard(self) -> None:
        """Take every field left: the resource as a whole is left out, and its one report
        line says so."""
        self._left = {}

    def finish(self) -> None:
        """One report line per field nobody took (ids and state excepted)."""
        for key, value in self._left.items():
            if key in self._ignored or value is None:
                continue
            self.note(key, "not carried over: opsflow has no equivalent")
        self._left = {}


def custom_json_of(fields: Fields, key: str) -> dict[str, Any] | None:
    """Custom JSON: an object in a template, a JSON string in describe-* output."""
    value = fields.take(key)
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else None
        except ValueError as err:
            fields.note(key, f"not valid JSON ({err}): not carried over")
            return None
    if value is None or isinstance(value, dict):
        return value
    fields.note(key, "not a JSON object: not carried over")
    return None


def as_flag(value: Any, fields: Fields, prop: str) -> bool | None:
    """true/false as a template writes them (`true`, `'true'`, `'False'`)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    fields.note(prop, f"{_shown(value, prop)} is not true or false: not carried over")
    return None


def as_number(value: Any, fields: Fields, prop: str) -> float | None:
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    fields.note(prop, f"{_shown(value, prop)} is not a number: not carried over")
    return None


def _kind(value: Any) -> str:
    kinds: dict[type, str] = {dict: "a mapping", list: "a list", str: "text"}
    return kinds.get(type(value), type(value).__name__)


def _shown(value: Any, prop: str) -> str:
    return "the value (not shown: a secret)" if is_secret(prop) else repr(value)[:80]


class NameRule:
    """One of opsflow's name rules, and how to make any text follow it."""

    def __init__(
        self,
        what: str,
        pattern: re.Pattern[str],
        limit: int,
        fallback: str,
        *,
        letter_first: bool,
        also: str = "",
    ) -> None:
        self.what = what
        self.also = also
        self.pattern = pattern
        self.limit = limit
        self.fallback = fallback
        self.letter_first = letter_first

    def made_valid(self, value: str) -> str:
        """Lower case, `-` for any other character, runs of `-` as one, trimmed to the
        length limit; the fallback when nothing is left."""
        name = re.sub(rf"[^a-z0-9{self.also}]+", "-", value.lower())
        start = r"^[^a-z]+" if self.letter_first else r"^[^a-z0-9]+"
        name = re.sub(start, "", name)
        name = name[: self.limit].rstrip("-")
        return name if self.pattern.fullmatch(name) else self.fallback


class Names:
    """Names given out under one rule: each made valid, and unique (`-2`, `-3`...)."""

    def __init__(self, rule: NameRule, report: Report) -> None:
        self.rule = rule
        self._report = report
        self.taken: set[str] = set()
        self._reserved: dict[str, str] = {}

    def reserve(self, name: str, why: str | None = None) -> None:
        """`name` given out already, or never to be (`why`: what it is, for the report)."""
        self.taken.add(name)
        if why is not None:
            self._reserved[name] = why

    def give(self, value: str | None, where: str, prop: str) -> str:
        """A valid, unused name for `value`; each change a report line."""
        wanted = value or ""
        name = self.rule.made_valid(wanted)
        if name != wanted:
            said = f"{wanted!r} is not a valid {self.rule.what}" if wanted else "no name given"
            self._report.add(where, prop, f"{said}: named {name!r}")
        if name in self.taken:
            unique = next(
                candidate
                for n in range(2, 10_000)
                if (candidate := f"{name[: self.rule.limit - len(str(n)) - 1]}-{n}")
                not in self.taken
            )
            taken = self._reserved.get(name, f"taken by another {self.rule.what}")
            self._report.add(where, prop, f"{name!r} is {taken}: named {unique!r}")
            name = unique
        self.taken.add(name)
        return name


class Context:
    """What the whole mapping shares: the report, the provider, `--source`s, the names."""

    def __init__(self, report: Report, *, ec2: bool, sources: dict[str, str]) -> None:
        self.report = report
        self.ec2 = ec2
        self.sources = sources
        self.used_sources: set[str] = set()
        self.stack_name = "STACK"  # the stack file's name, once it is decided

    def fields(self, resource: Resource) -> Fields:
        return Fields(resource, self.report)

    def ec2_only(self, fields: Fields, key: str, what: str = "") -> Any:
        """The field's value on provider ec2; on local, a report line (and None)."""
        value = fields.take(key)
        if value is None or value == [] or value == "" or self.ec2:
            return value
        fields.note(key, f"not carried over: {what or 'an EC2 setting'}, provider local")
        return None
