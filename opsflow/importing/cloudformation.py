"""A CloudFormation template's `AWS::OpsWorks::*` resources as an OpsWorksStack.

Parameters (defaults, or the values given), pseudo parameters, conditions and the
intrinsic functions are evaluated where their inputs are known. What cannot be (a Ref to a
parameter with no value, `AWS::AccountId`, `Fn::ImportValue`, an attribute only AWS knows)
leaves its property out of the resource's fields, with a report line naming the logical id,
the property and why. NoEcho parameters are secrets: their values go only where the
mapping makes them secure values (an app environment entry with `Secure: true`, an app's
SSL private key, a stack's RDS password); anywhere else they are reported, not copied.

Pure: the file is read (JSON or YAML, short forms turned into long ones) by
client/importers/template_files.py.
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from opsflow.errors import SpecError
from opsflow.importing import cfn_parameters as cfp
from opsflow.importing.model import OpsWorksStack, Report, Resource

STACK: Final = "AWS::OpsWorks::Stack"
APP: Final = "AWS::OpsWorks::App"
CLASSIC_ELB: Final = "AWS::ElasticLoadBalancing::LoadBalancer"

# The resource types read, and the OpsWorksStack list each goes to.
KINDS: Final = {
    "AWS::OpsWorks::Layer": "layers",
    "AWS::OpsWorks::Instance": "instances",
    APP: "apps",
    "AWS::OpsWorks::ElasticLoadBalancerAttachment": "elb_attachments",
    "AWS::OpsWorks::Volume": "volumes",
    "AWS::OpsWorks::UserProfile": "users",
}

SECURE_HOMES: Final = (
    "app environment entries with Secure: true, app SSL private keys, stack RDS passwords"
)


class _Absent:
    """`AWS::NoValue`, and a value left out (reported): its key or element is removed."""

    def __repr__(self) -> str:
        return "<absent>"


ABSENT: Final = _Absent()


@dataclass(frozen=True)
class _At:
    """Where a value is being resolved, for notes: a logical id and a dotted property."""

    where: str
    prop: str


def read_template(
    template: Mapping[str, Any],
    *,
    where: str,
    parameters: Mapping[str, str],
    stack_name: str,
    region: str | None,
) -> tuple[OpsWorksStack, Report]:
    """The OpsWorks stack in `template` (already parsed, long forms), and the report of
    what was not carried over. `where` names the file in errors; `parameters` are the
    values given for the template's parameters (over their defaults).

    Raises SpecError for a template that cannot be read as one OpsWorks stack: no
    resources, none of OpsWorks, no or several `AWS::OpsWorks::Stack`, a `--parameter`
    naming no parameter or failing its type.
    """
    report = Report()
    reader = _Reader(template, where, parameters, stack_name, region, report)
    return reader.stack(), report


class _Reader:
    def __init__(
        self,
        template: Mapping[str, Any],
        where: str,
        given: Mapping[str, str],
        stack_name: str,
        region: str | None,
        report: Report,
    ) -> None:
        self.where = where
        self.stack_name = stack_name
        self.region = region
        self.report = report
        self.resources = _resources(template, where)
        self.params = cfp.read_parameters(_section(template, "Parameters", where), where, given)
        self.mappings = _section(template, "Mappings", where)
        self.condition_defs = _section(template, "Conditions", where)
        self.conditions: dict[str, bool | cfp.Unresolved] = {}
        self.evaluating: set[str] = set()
        self.left_out: dict[str, str] = {}
        self.fields: dict[str, dict[str, Any]] = {}
        self.busy: set[str] = set()  # resources whose fields are being resolved
        self.template = template

    # -- the stack ----------------------------------------------------------------------

    def stack(self) -> OpsWorksStack:
        types = sorted({str(r["Type"]) for r in self.resources.values()})
        if not any(t.startswith("AWS::OpsWorks::") for t in types):
            raise SpecError(
                self.where, [f"no AWS::OpsWorks resources (found types: {', '.join(types)})"]
            )
        for lid, resource in self.resources.items():
            self._decide_condition(lid, resource)
        kept = {lid: r for lid, r in self.resources.items() if lid not in self.left_out}
        stacks = [lid for lid, r in kept.items() if r["Type"] == STACK]
        if not stacks:
            gone = [lid for lid in self.left_out if self.resources[lid]["Type"] == STACK]
            why = f" ({', '.join(gone)} left out: condition false)" if gone else ""
            raise SpecError(
                self.where,
                [f"no AWS::OpsWorks::Stack resource{why} (found types: {', '.join(types)})"],
            )
        if len(stacks) > 1:
            raise SpecError(
                self.where,
                [
                    f"several AWS::OpsWorks::Stack resources ({', '.join(stacks)}): "
                    "opsflow imports one stack per template; keep one (or make the others "
                    "conditional and pass the --parameter that leaves them out)"
                ],
            )
        lists: dict[str, list[Resource]] = {kind: [] for kind in KINDS.values()}
        stack = Resource(id=stacks[0], source=stacks[0], fields=self._fields(stacks[0]))
        for lid, resource in kept.items():
            kind = KINDS.get(resource["Type"])
            if kind is not None:
                lists[kind].append(Resource(id=lid, source=lid, fields=self._fields(lid)))
        for attachment in lists["elb_attachments"]:
            self._load_balancer(attachment)
        for lid, resource in kept.items():
            self._other(lid, resource["Type"], lists["elb_attachments"])
        self._template_sections()
        return OpsWorksStack(stack=stack, **lists)

    def _decide_condition(self, lid: str, resource: Mapping[str, Any]) -> None:
        name = resource.get("Condition")
        if name is None:
            return
        try:
            holds = self.condition(str(name), _At(lid, "Condition"))
        except cfp.Unresolved as err:
            self.report.add(lid, "Condition", f"{name} could not be evaluated ({err.reason}): kept")
            return
        if not holds:
            self.left_out[lid] = str(name)
            self.report.add(lid, "Condition", f"{name} is false: the resource is left out")

    def _fields(self, lid: str) -> dict[str, Any]:
        """A resource's properties, resolved (what cannot be is reported and left out),
        secrets only where they may be. Memoized: Fn::GetAtt reads them too."""
        if lid not in self.fields:
            self.busy.add(lid)
            try:
                props = self.resources[lid].get("Properties") or {}
                resolved = self.data(props, lid, "")
                fields = resolved if isinstance(resolved, dict) else {}
                self.fields[lid] = self._guard_secrets(self.resources[lid]["Type"], lid, fields)
            finally:
                self.busy.discard(lid)
        return self.fields[lid]

    def _guard_secrets(self, type_: str, lid: str, fields: dict[str, Any]) -> dict[str, Any]:
        homes: set[str] = set()
        if type_ == APP:
            homes.add("SslConfiguration.PrivateKey")
            for i, entry in enumerate(_list(fields.get("Environment"))):
                if isinstance(entry, Mapping) and cfp.is_true(entry.get("Secure")):
                    homes.add(f"Environment[{i}].Value")
        elif type_ == STACK:
            for i, _ in enumerate(_list(fields.get("RdsDbInstances"))):
                homes.add(f"RdsDbInstances[{i}].DbPassword")

        def walk(value: Any, path: str) -> Any:
            if isinstance(value, cfp.Secret):
                if path in homes:
                    return str(value)
                self.report.add(
                    lid,
                    path,
                    f"holds the value of NoEcho parameter {value.parameter}, a secret: "
                    f"not copied (secrets go only to secure values: {SECURE_HOMES})",
                )
                return ABSENT
            if isinstance(value, dict):
                kept = {k: walk(v, _dot(path, k)) for k, v in value.items()}
                return {k: v for k, v in kept.items() if v is not ABSENT}
            if isinstance(value, list):
                items = [walk(v, f"{path}[{i}]") for i, v in enumerate(value)]
                return [v for v in items if v is not ABSENT]
            return value

        guarded = walk(fields, "")
        assert isinstance(guarded, dict)
        return guarded

    def _load_balancer(self, attachment: Resource) -> None:
        """What the template says of the Classic ELB an attachment names: its zones and
        subnets, as DescribeElasticLoadBalancers has them."""
        props = self.resources[attachment.id].get("Properties") or {}
        name = props.get("ElasticLoadBalancerName")
        if not (isinstance(name, Mapping) and set(name) == {"Ref"}):
            return
        lb = self.resources.get(str(name["Ref"]))
        if lb is None or lb["Type"] != CLASSIC_ELB or str(name["Ref"]) in self.left_out:
            return
        lb_id = str(name["Ref"])
        lb_props = lb.get("Properties") or {}
        for source, target in (
            ("AvailabilityZones", "AvailabilityZones"),
            ("Subnets", "SubnetIds"),
        ):
            if source in lb_props:
                value = self.data(lb_props[source], lb_id, source)
                if value is not ABSENT:
                    attachment.fields.update(
                        self._guard_secrets(CLASSIC_ELB, lb_id, {target: value})
                    )
        if self.region is not None:
            attachment.fields["Region"] = self.region

    def _other(self, lid: str, type_: str, attachments: list[Resource]) -> None:
        if type_ == STACK or type_ in KINDS:
            return
        if type_ == CLASSIC_ELB:
            users = [a.id for a in attachments if self._names_lb(a.id, lid)]
            if users:
                self.report.add(
                    lid,
                    "Type",
                    f"{type_} (a Classic ELB) is not created by opsflow; what is known of it "
                    f"goes with {', '.join(users)}",
                )
                return
        self.report.add(lid, "Type", f"{type_} is not an OpsWorks resource: not carried over")

    def _names_lb(self, attachment: str, lb: str) -> bool:
        props = self.resources[attachment].get("Properties") or {}
        return props.get("ElasticLoadBalancerName") == {"Ref": lb}

    def _template_sections(self) -> None:
        if "Transform" in self.template:
            self.report.add(
                self.where, "Transform", "macros and transforms are not run: check the result"
            )
        outputs = self.template.get("Outputs")
        if isinstance(outputs, Mapping) and outputs:
            self.report.add(
                self.where,
                "Outputs",
                f"{', '.join(map(str, outputs))}: opsflow has no stack outputs, not carried over",
            )

    # -- values where a template holds data: what cannot be resolved is left out --------

    def data(self, node: Any, lid: str, path: str) -> Any:
        if _intrinsic(node):
            ((key, arg),) = node.items()
            at = _At(lid, path)
            try:
                if key == "Fn::If":
                    return self.data(self._branch(arg, at), lid, path)
                return self.resolve(node, at)
            except cfp.Unresolved as err:
                self.report.add(lid, path or "Properties", f"not carried over: {err.reason}")
                return ABSENT
        if isinstance(node, Mapping):
            out = {str(k): self.data(v, lid, _dot(path, str(k))) for k, v in node.items()}
            return {k: v for k, v in out.items() if v is not ABSENT}
        if isinstance(node, list):
            items = [self.data(v, lid, f"{path}[{i}]") for i, v in enumerate(node)]
            return [v for v in items if v is not ABSENT]
        return node

    # -- values inside intrinsic functions: all or nothing --------------------------------

    def resolve(self, node: Any, at: _At) -> Any:
        if _intrinsic(node):
            ((key, arg),) = node.items()
            if key == "Ref":
                return self.ref(arg, at)
            function = self._functions().get(key)
            if function is None:
                raise cfp.Unresolved(f"{key} is not evaluated by the importer")
            return function(arg, at)
        if isinstance(node, Mapping):
            out = {str(k): self.resolve(v, at) for k, v in node.items()}
            return {k: v for k, v in out.items() if v is not ABSENT}
        if isinstance(node, list):
            return [v for v in (self.resolve(x, at) for x in node) if v is not ABSENT]
        return node

    def _functions(self) -> dict[str, Callable[[Any, _At], Any]]:
        return {
            "Fn::Join": self._join,
            "Fn::Sub": self._sub,
            "Fn::Select": self._select,
            "Fn::Split": self._split,
            "Fn::GetAZs": self._get_azs,
            "Fn::If": lambda arg, at: self.resolve(self._branch(arg, at), at),
            "Fn::FindInMap": self._find_in_map,
            "Fn::Base64": self._base64,
            "Fn::GetAtt": self._get_att,
            "Fn::ImportValue": _unresolvable(
                "Fn::ImportValue: a value exported by another CloudFormation stack is not known"
            ),
            "Fn::Cidr": self._cidr,
            "Fn::Length": self._length,
            "Fn::ToJsonString": self._to_json_string,
            "Fn::GetStackOutput": _unresolvable("another stack's outputs are not known"),
        }

    def ref(self, name: Any, at: _At) -> Any:
        if not isinstance(name, str):
            raise cfp.Unresolved("Ref takes a name")
        if name.startswith("AWS::"):
            return self._pseudo(name)
        if name in self.params:
            parameter = self.params[name]
            if parameter.missing is not None:
                raise cfp.Unresolved(parameter.missing)
            return parameter.value
        resource = self.resources.get(name)
        if resource is None:
            raise cfp.Unresolved(f"Ref {name}: the template has no parameter or resource {name}")
        if name in self.left_out:
            raise cfp.Unresolved(
                f"Ref {name}: the resource is left out (condition {self.left_out[name]} is false)"
            )
        type_ = resource["Type"]
        if type_.startswith("AWS::OpsWorks::"):
            return name
        props = resource.get("Properties") or {}
        if type_ == CLASSIC_ELB and "LoadBalancerName" in props:
            return self.resolve(props["LoadBalancerName"], at)
        self.report.add(
            at.where,
            at.prop or "Properties",
            f"Ref {name} ({type_}): the name AWS gave it is not known; its logical id stands in",
        )
        return name

    def _pseudo(self, name: str) -> Any:
        region = self.region
        if name == "AWS::NoValue":
            return ABSENT
        if name == "AWS::StackName":
            return self.stack_name
        if name == "AWS::Region":
            if region is None:
                raise cfp.Unresolved("AWS::Region is not known (give --region)")
            return region
        if name == "AWS::Partition":
            return _partition(region)
        if name == "AWS::URLSuffix":
            return "amazonaws.com.cn" if (region or "").startswith("cn-") else "amazonaws.com"
        if name == "AWS::AccountId":
            raise cfp.Unresolved("AWS::AccountId: the AWS account id is not known")
        if name in ("AWS::StackId", "AWS::NotificationARNs"):
            raise cfp.Unresolved(f"{name} is known only to a CloudFormation stack")
        raise cfp.Unresolved(f"Ref {name}: not a pseudo parameter")

    def _join(self, arg: Any, at: _At) -> str:
        if not (isinstance(arg, list) and len(arg) == 2):
            raise cfp.Unresolved("Fn::Join takes [delimiter, [values]]")
        delimiter = self.resolve(arg[0], at)
        values = self.resolve(arg[1], at)
        if not isinstance(delimiter, str) or not isinstance(values, list):
            raise cfp.Unresolved("Fn::Join takes [delimiter, [values]]")
        return cfp.made_of(
            [delimiter, *values], str(delimiter).join(cfp.as_text(v) for v in values)
        )

    def _sub(self, arg: Any, at: _At) -> str:
        variables: dict[str, Any] = {}
        if isinstance(arg, list) and len(arg) == 2 and isinstance(arg[1], Mapping):
            text, given = arg
            for key, value in given.items():
                variables[str(key)] = self.resolve(value, at)
        else:
            text = arg
        if not isinstance(text, str):
            raise cfp.Unresolved("Fn::Sub takes a string, or [string, {variables}]")
        parts: list[Any] = []

        def one(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                value = variables[name]
            elif "." in name and not name.startswith("AWS::"):
                value = self._get_att(name, at)
            else:
                value = self.ref(name, at)
            if isinstance(value, list | dict) or value is ABSENT:
                raise cfp.Unresolved(f"Fn::Sub: ${{{name}}} is not a single value")
            parts.append(value)
            return cfp.as_text(value)

        return cfp.made_of(parts, re.sub(r"\$\{([^}]*)\}", one, text))

    def _select(self, arg: Any, at: _At) -> Any:
        if not (isinstance(arg, list) and len(arg) == 2):
            raise cfp.Unresolved("Fn::Select takes [index, [values]]")
        index = self.resolve(arg[0], at)
        values = self.resolve(arg[1], at)
        try:
            number = int(index)
        except (TypeError, ValueError):
            raise cfp.Unresolved("Fn::Select: the index is not a number") from None
        if not isinstance(values, list):
            raise cfp.Unresolved("Fn::Select: the values are not a list")
        if not 0 <= number < len(values):
            raise cfp.Unresolved(f"Fn::Select: index {number} of a list of {len(values)}")
        return values[number]

    def _split(self, arg: Any, at: _At) -> list[str]:
        if not (isinstance(arg, list) and len(arg) == 2):
            raise cfp.Unresolved("Fn::Split takes [delimiter, string]")
        delimiter = self.resolve(arg[0], at)
        text = self.resolve(arg[1], at)
        if not isinstance(delimiter, str) or not delimiter or not isinstance(text, str):
            raise cfp.Unresolved("Fn::Split takes [delimiter, string]")
        return [cfp.made_of([text], part) for part in text.split(delimiter)]

    def _cidr(self, arg: Any, at: _At) -> list[str]:
        """[ip block, count, bits per subnet]: the first `count` subnets of the block, each
        with `bits` host bits, as CloudFormation gives them."""
        if not (isinstance(arg, list) and len(arg) == 3):
            raise cfp.Unresolved("Fn::Cidr takes [ip block, count, cidr bits]")
        block, count, bits = (self.resolve(part, at) for part in arg)
        try:
            network = ipaddress.ip_network(str(block), strict=False)
            count, bits = int(count), int(bits)
        except ValueError:
            raise cfp.Unresolved(
                f"Fn::Cidr: {block!r}, {count!r}, {bits!r} is not a block, count, bits"
            ) from None
        prefix = network.max_prefixlen - bits
        if not (1 <= count <= 256 and network.prefixlen <= prefix <= network.max_prefixlen):
            raise cfp.Unresolved(
                f"Fn::Cidr: {count} subnets of {bits} bits do not fit in {network}"
            )
        subnets = [str(net) for net in itertools.islice(network.subnets(new_prefix=prefix), count)]
        if len(subnets) < count:
            raise cfp.Unresolved(
                f"Fn::Cidr: {network} holds only {len(subnets)} subnets of {bits} bits"
            )
        return subnets

    def _length(self, arg: Any, at: _At) -> int:
        values = self.resolve(arg, at)
        if not isinstance(values, list):
            raise cfp.Unresolved("Fn::Length takes a list")
        return len(values)

    def _to_json_string(self, arg: Any, at: _At) -> str:
        value = self.resolve(arg, at)
        if not isinstance(value, Mapping | list):
            raise cfp.Unresolved("Fn::ToJsonString takes an object or a list")
        secrets = [v for v in cfp.leaves(value) if isinstance(v, cfp.Secret)]
        return cfp.made_of(secrets, json.dumps(value, separators=(",", ":")))

    def _get_azs(self, arg: Any, at: _At) -> list[str]:
        region = self.resolve(arg, at) or self.region
        if not isinstance(region, str) or not region:
            raise cfp.Unresolved("Fn::GetAZs: AWS::Region is not known (give --region)")
        zones = [f"{region}{letter}" for letter in "abc"]
        self.report.add(
            at.where,
            at.prop or "Properties",
            f"Fn::GetAZs: the zones of {region} are assumed to be {', '.join(zones)}",
        )
        return zones

    def _find_in_map(self, arg: Any, at: _At) -> Any:
        if not (isinstance(arg, list) and len(arg) == 3):
            raise cfp.Unresolved("Fn::FindInMap takes [map, top-level key, second-level key]")
        keys = [self.resolve(key, at) for key in arg]
        found: Any = self.mappings
        for depth, key in enumerate(keys):
            if not isinstance(found, Mapping) or cfp.as_text(key) not in found:
                shown = "a secret" if isinstance(key, cfp.Secret) else repr(cfp.as_text(key))
                level = ("mapping", "top-level key", "second-level key")[depth]
                raise cfp.Unresolved(f"Fn::FindInMap: no {level} {shown} in Mappings")
            found = found[cfp.as_text(key)]
        return self.resolve(found, at)

    def _base64(self, arg: Any, at: _At) -> str:
        value = self.resolve(arg, at)
        if isinstance(value, list | dict):
            raise cfp.Unresolved("Fn::Base64 takes a string")
        encoded = base64.b64encode(cfp.as_text(value).encode()).decode()
        return cfp.made_of([value], encoded)

    def _get_att(self, arg: Any, at: _At) -> Any:
        if isinstance(arg, str) and "." in arg:
            arg = arg.split(".", 1)
        if not (isinstance(arg, list) and len(arg) == 2):
            raise cfp.Unresolved("Fn::GetAtt takes [logical id, attribute]")
        lid, attribute = str(arg[0]), cfp.as_text(self.resolve(arg[1], at))
        resource = self.resources.get(lid)
        if resource is None:
            raise cfp.Unresolved(
                f"Fn::GetAtt {lid}.{attribute}: the template has no resource {lid}"
            )
        if lid in self.left_out:
            raise cfp.Unresolved(f"Fn::GetAtt {lid}.{attribute}: the resource is left out")
        # An OpsWorks attribute that is also a property set in the template
        # (UserProfile.SshUsername, Instance.AvailabilityZone) is that property's value.
        if resource["Type"].startswith("AWS::OpsWorks::") and lid not in self.busy:
            fields = self._fields(lid)
            if attribute in fields:
                return fields[attribute]
        raise cfp.Unresolved(f"Fn::GetAtt {lid}.{attribute}: known only once AWS has created {lid}")

    # -- conditions -----------------------------------------------------------------------

    def _branch(self, arg: Any, at: _At) -> Any:
        if not (isinstance(arg, list) and len(arg) == 3):
            raise cfp.Unresolved("Fn::If takes [condition, value if true, value if false]")
        return arg[1] if self.condition(str(arg[0]), at) else arg[2]

    def condition(self, name: str, at: _At) -> bool:
        known = self.conditions.get(name)
        if isinstance(known, cfp.Unresolved):
            raise known
        if known is not None:
            return known
        if name not in self.condition_defs:
            raise cfp.Unresolved(f"the template has no condition {name}")
        if name in self.evaluating:
            raise cfp.Unresolved(f"condition {name} refers to itself")
        self.evaluating.add(name)
        try:
            holds = self.test(self.condition_defs[name], at)
        except cfp.Unresolved as err:
            failed = cfp.Unresolved(f"condition {name}: {err.reason}")
            self.conditions[name] = failed
            raise failed from None
        finally:
            self.evaluating.discard(name)
        self.conditions[name] = holds
        return holds

    def test(self, node: Any, at: _At) -> bool:
        if isinstance(node, Mapping) and len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Condition":
                return self.condition(str(arg), at)
            if key == "Fn::Equals":
                if not (isinstance(arg, list) and len(arg) == 2):
                    raise cfp.Unresolved("Fn::Equals takes [value, value]")
                return _same(self.resolve(arg[0], at), self.resolve(arg[1], at))
            if key == "Fn::Not":
                if not (isinstance(arg, list) and len(arg) == 1):
                    raise cfp.Unresolved("Fn::Not takes [condition]")
                return not self.test(arg[0], at)
            if key in ("Fn::And", "Fn::Or"):
                if not isinstance(arg, list):
                    raise cfp.Unresolved(f"{key} takes a list of conditions")
                return self._all_or_any(key == "Fn::And", arg, at)
        value = self.resolve(node, at)
        if isinstance(value, bool) or cfp.as_text(value) in ("true", "false"):
            return cfp.is_true(value)
        raise cfp.Unresolved("a condition must be true or false")

    def _all_or_any(self, every: bool, terms: list[Any], at: _At) -> bool:
        """Fn::And / Fn::Or: decided by one known term where that is enough (a false
        term of an And, a true one of an Or), even when others are unknown."""
        unknown: cfp.Unresolved | None = None
        for term in terms:
            try:
                holds = self.test(term, at)
            except cfp.Unresolved as err:
                unknown = unknown or err
                continue
            if holds != every:
                return holds
        if unknown is not None:
            raise unknown
        return every


# -- parameters and sections --------------------------------------------------------------


def _resources(template: Mapping[str, Any], where: str) -> dict[str, Mapping[str, Any]]:
    resources = template.get("Resources")
    if not isinstance(resources, Mapping) or not resources:
        raise SpecError(where, ["Resources: the template has no resources"])
    for lid, resource in resources.items():
        if not (isinstance(resource, Mapping) and isinstance(resource.get("Type"), str)):
            raise SpecError(where, [f"Resources.{lid}: not a resource (a mapping with a Type)"])
        if not isinstance(resource.get("Properties") or {}, Mapping):
            raise SpecError(where, [f"Resources.{lid}.Properties: must be a mapping"])
    return {str(lid): resource for lid, resource in resources.items()}


def _section(template: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any]:
    section = template.get(name) or {}
    if not isinstance(section, Mapping):
        raise SpecError(where, [f"{name}: must be a mapping"])
    return section


# -- small helpers ------------------------------------------------------------------------


def _intrinsic(node: Any) -> bool:
    if not (isinstance(node, Mapping) and len(node) == 1):
        return False
    (key,) = node
    return key == "Ref" or (isinstance(key, str) and key.startswith("Fn::"))


def _unresolvable(reason: str) -> Callable[[Any, _At], Any]:
    def refuse(arg: Any, at: _At) -> Any:
        raise cfp.Unresolved(reason)

    return refuse


def _same(left: Any, right: Any) -> bool:
    if isinstance(left, list) or isinstance(right, list):
        return (
            isinstance(left, list)
            and isinstance(right, list)
            and [cfp.as_text(v) for v in left] == [cfp.as_text(v) for v in right]
        )
    return cfp.as_text(left) == cfp.as_text(right)


def _partition(region: str | None) -> str:
    if region is not None and region.startswith("cn-"):
        return "aws-cn"
    if region is not None and region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dot(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
