"""What both importers hand to the mapping: an OpsWorks stack in the shape of the OpsWorks
API (and of the `AWS::OpsWorks::*` CloudFormation properties, which use the same names),
and the report of what could not be carried over.

Each resource is a plain dict with AWS's own PascalCase keys (`Name`, `Shortname`,
`CustomRecipes`, `LayerIds`, `AppSource`, ...), values already resolved (no intrinsic
functions left: an unresolved value is absent, and reported). Ids are strings that tie the
resources together: real OpsWorks ids from describe-* output, logical ids from a template
(`Ref: myLayer` becomes `"myLayer"`). Time- and load-based scaling are merged into their
instance (`TimeBasedAutoScaling`) and layer (`LoadBasedAutoScaling`) as CloudFormation has
them, whichever importer read them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

FILL_IN = "<FILL IN: {reason}>"
"""The placeholder a person must replace; the stack-file loader refuses it by field name."""


def fill_in(reason: str) -> str:
    return FILL_IN.format(reason=reason)


class Resource(BaseModel):
    """One OpsWorks resource: its id, where it came from (for report lines), its fields."""

    id: str = Field(description="OpsWorks id (describe) or logical id (template)")
    source: str = Field(description="how the report names it: a logical id, or KIND ID")
    fields: dict[str, Any] = Field(default_factory=dict)


class OpsWorksStack(BaseModel):
    """One OpsWorks stack and everything in it, as the importers found it."""

    stack: Resource
    layers: list[Resource] = Field(default_factory=list)
    instances: list[Resource] = Field(default_factory=list)
    apps: list[Resource] = Field(default_factory=list)
    elb_attachments: list[Resource] = Field(
        default_factory=list, description="ElasticLoadBalancerName + LayerId (+ what is known)"
    )
    volumes: list[Resource] = Field(default_factory=list, description="AWS::OpsWorks::Volume")
    users: list[Resource] = Field(default_factory=list, description="AWS::OpsWorks::UserProfile")
    rds_db_instances: list[Resource] = Field(default_factory=list)


class ReportLine(BaseModel):
    """One thing not carried over (or changed on the way): where, which property, why."""

    where: str = Field(description="the resource's logical id or id (or the file)")
    property: str = Field(description="the property, dotted (e.g. CustomRecipes.Setup)")
    message: str

    def render(self) -> str:
        return f"{self.where}: {self.property}: {self.message}"


class Report(BaseModel):
    lines: list[ReportLine] = Field(default_factory=list)

    def add(self, where: str, prop: str, message: str) -> None:
        self.lines.append(ReportLine(where=where, property=prop, message=message))

    def render(self) -> str:
        return "".join(line.render() + "\n" for line in self.lines)
