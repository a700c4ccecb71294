"""OpsWorks apps as opsflow apps (source, environment with secure values, domains, SSL,
document root and attributes, type, database), and the RDS DB instances they use.

Which layers an imported app deploys to: OpsWorks deployed an app to the instances of the
built-in app server layer of its type (a php app to php-app layers...), and in stacks of
custom layers to every instance (its recipes chose what to do). So: the layers whose
Type matches the app's, else every layer of the stack; either way a report line."""

from __future__ import annotations

import re
from typing import Any

from pydantic import TypeAdapter, ValidationError

from opsflow import aws, names
from opsflow.importing.fields import FILTERED, Context, Fields, NameRule, Names
from opsflow.importing.layers import Layers
from opsflow.importing.model import OpsWorksStack, Resource, fill_in
from opsflow.importing.sources import code_source
from opsflow.spec.apps import AppType, Domain

APP_NAMES = NameRule("app name", names.STACK_NAME, 39, "app", letter_first=True)
RDS_NAMES = NameRule("rds name", names.STACK_NAME, 39, "db", letter_first=True)

# The layer type whose instances OpsWorks deployed an app of each type to.
SERVER_LAYER = {
    "php": "php-app",
    "rails": "rails-app",
    "nodejs": "nodejs-app",
    "java": "java-app",
    "static": "web",
    "aws-flow-ruby": "aws-flow-ruby",
}
_APP_ATTRIBUTES = {
    "RailsEnv": "rails_env",
    "AutoBundleOnDeploy": "auto_bundle_on_deploy",
    "AwsFlowRubySettings": "aws_flow_ruby_settings",
}
_RDS_ARN = re.compile(r"^arn:aws[a-z-]*:rds:[a-z0-9-]+:\d{12}:db:(?P<id>[A-Za-z0-9-]+)$")
_DOMAIN: TypeAdapter[str] = TypeAdapter(Domain)


class Databases:
    """The RDS DB instances of the stack as `rds` entries, by ARN."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.by_arn: dict[str, dict[str, Any]] = {}
        self.names = Names(RDS_NAMES, ctx.report)

    def entries(self) -> list[dict[str, Any]]:
        return list(self.by_arn.values())


def map_databases(found: OpsWorksStack, ctx: Context) -> Databases:
    """`describe-rds-db-instances` output, or a template stack's `RdsDbInstances`."""
    databases = Databases(ctx)
    resources = list(found.rds_db_instances)
    stack_level = found.stack.fields.get("RdsDbInstances") or []
    for index, item in enumerate(stack_level if isinstance(stack_level, list) else []):
        if isinstance(item, dict):
            source = f"{found.stack.source}.RdsDbInstances[{index}]"
            resources.append(Resource(id=source, source=source, fields=item))
    for resource in resources:
        fields = ctx.fields(resource)
        _database(fields, databases)
        fields.finish()
    return databases


def _database(fields: Fields, databases: Databases) -> None:
    ctx = databases.ctx
    arn = fields.text("RdsDbInstanceArn") or ""
    identifier = fields.text("DbInstanceIdentifier")
    user = fields.text("DbUser")
    has_password = fields.has("DbPassword")
    password = fields.text("DbPassword")  # never quoted below
    fields.take("Region")
    if identifier is None:
        found = _RDS_ARN.fullmatch(arn)
        identifier = found["id"] if found else None
    if not ctx.ec2:
        fields.note(
            "RdsDbInstanceArn",
            f"RDS DB instance {identifier or arn!r} is not carried "
            "over: an EC2 setting, provider local",
        )
        return
    if identifier is None or not aws.RDS_IDENTIFIER.fullmatch(identifier):
        fields.note("RdsDbInstanceArn", f"{arn!r} names no RDS DB instance: not carried over")
        return
    name = databases.names.give(identifier, fields.where, "DbInstanceIdentifier")
    if password is None or password == FILTERED:
        why = "is not in describe-* output" if has_password else "was not given"
        fields.note(
            "DbPassword", f"the password of {identifier} {why}: the file holds a placeholder"
        )
        password = fill_in(f"the password of RDS DB instance {identifier} (user {user})")
    entry: dict[str, Any] = {
        "name": name,
        "identifier": identifier,
        "username": user or fill_in(f"the database user of RDS DB instance {identifier}"),
        "password": {"value": password, "secure": True},
    }
    if user is None:
        fields.note("DbUser", "no user given: the file holds a placeholder")
    databases.by_arn[arn or identifier] = entry


def map_apps(
    found: OpsWorksStack, ctx: Context, layers: Layers, databases: Databases
) -> list[dict[str, Any]]:
    apps: list[dict[str, Any]] = []
    app_names = Names(APP_NAMES, ctx.report)
    for resource in found.apps:
        fields = ctx.fields(resource)
        apps.append(_app(fields, ctx, app_names, layers, databases))
        fields.finish()
    return apps


def _app(
    fields: Fields, ctx: Context, app_names: Names, layers: Layers, databases: Databases
) -> dict[str, Any]:
    shortname = fields.text("Shortname")
    display = fields.text("Name")
    name = app_names.give(shortname or display, fields.where, "Shortname")
    if display is not None and shortname is not None and display != name:
        fields.note("Name", f"the display name {display!r} is not carried over (named {name!r})")
    app: dict[str, Any] = {"name": name}
    kind = (fields.text("Type") or "other").lower()
    if kind not in {t.value for t in AppType}:
        fields.note("Type", f"{kind!r} is not an app type opsflow knows: taken as other")
        kind = "other"
    app["layers"] = _app_layers(fields, name, kind, layers)
    source = _source(fields, ctx, name, {shortname, display, name})
    if source is not None:
        app["source"] = source
    if kind != "other":
        app["type"] = kind
    environment = _environment(fields)
    if environment:
        app["environment"] = environment
    domains = _domains(fields)
    if domains:
        app["domains"] = domains
    ssl = _ssl(fields, name)
    if ssl is not None:
        app["ssl"] = ssl
    _attributes(fields, app)
    data_source = _data_source(fields, ctx, databases)
    if data_source is not None:
        app["data_source"] = data_source
    fields.drop("Description", "opsflow apps have no description")
    return app


def _app_layers(fields: Fields, name: str, kind: str, layers: Layers) -> list[str]:
    server = SERVER_LAYER.get(kind)
    matching = [layer for layer, t in layers.types.items() if server is not None and t == server]
    every = [str(layer["name"]) for layer in layers.all()]
    if matching:
        fields.note("Type", f"deployed to the {server} layers, as on OpsWorks: {matching}")
        return matching
    if every:
        fields.note(
            "Type",
            f"deployed to every layer ({', '.join(every)}): no {server or 'app server'} layer "
            "to match; narrow `layers` to those that serve it",
        )
        return every
    fields.note("Type", "the stack has no layer to deploy it to: the file holds a placeholder")
    return [fill_in(f"the layers app {name} deploys to")]


def _source(fields: Fields, ctx: Context, name: str, known: set[str | None]) -> Any:
    given = next((key for key in ctx.sources if key in known and key != "cookbooks"), None)
    if given is None:
        return code_source(fields, "AppSource", f"app {name}")
    ctx.used_sources.add(given)
    if fields.has("AppSource"):
        fields.take("AppSource")
        fields.note("AppSource", f"replaced by --source {given}={ctx.sources[given]}")
    return {"source": ctx.sources[given]}


def _environment(fields: Fields) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for index, item in enumerate(fields.items("Environment")):
        prop = f"Environment[{index}]"
        if not isinstance(item, dict):
            fields.note(prop, "not a {Key, Value, Secure} mapping: left out")
            continue
        variable = fields.nested("Environment", item, index)
        key = variable.text("Key")
        secure = variable.flag("Secure")
        has_value = variable.has("Value")
        value = variable.text("Value") if not secure else variable.take("Value")
        variable.finish()
        if key is None or not names.ENV_NAME.fullmatch(key):
            fields.note(f"{prop}.Key", f"{key!r} is not an environment variable name: left out")
            continue
        if not secure:
            found[key] = value or ""
            continue
        if not isinstance(value, str) or not has_value or value == FILTERED:
            fields.note_missing(
                f"{prop}.Value",
                f"the Secure value of {key} is not in the input: the file holds a placeholder",
            )
            value = fill_in(f"the Secure value of {key}, which the import did not have")
        found[key] = {"value": value, "secure": True}
    return found


def _domains(fields: Fields) -> list[str]:
    found: list[str] = []
    for index, domain in enumerate(fields.items("Domains")):
        try:
            found.append(_DOMAIN.validate_python(str(domain)))
        except ValidationError:
            fields.note(f"Domains[{index}]", f"{str(domain)[:80]!r} is not a domain: left out")
    return found


def _ssl(fields: Fields, name: str) -> dict[str, Any] | None:
    enabled = fields.flag("EnableSsl")
    given = fields.mapping("SslConfiguration") or {}
    inner = fields.nested("SslConfiguration", given)
    certificate = inner.text("Certificate")
    chain = inner.text("Chain")
    key = inner.take("PrivateKey")  # never quoted
    inner.finish()
    if not enabled:
        if given:
            fields.note("SslConfiguration", "not carried over: EnableSsl is not true")
        return None
    if certificate is None:
        fields.note("SslConfiguration.Certificate", "missing: the file holds a placeholder")
        certificate = fill_in(f"the PEM certificate of app {name}")
    if not isinstance(key, str) or not key or key == FILTERED:
        fields.note_missing(
            "SslConfiguration.PrivateKey", "not in the input: the file holds a placeholder"
        )
        key = fill_in(f"the PEM private key of app {name}'s certificate")
    ssl: dict[str, Any] = {"certificate": certificate, "key": {"value": key, "secure": True}}
    if chain is not None:
        ssl["chain"] = chain
    return ssl


def _attributes(fields: Fields, app: dict[str, Any]) -> None:
    attributes = fields.mapping("Attributes") or {}
    inner = fields.nested("Attributes", attributes)
    root = inner.text("DocumentRoot")
    if root is not None:
        app["document_root"] = root
    carried: dict[str, Any] = {}
    for key, option in _APP_ATTRIBUTES.items():
        value = inner.take(key)
        if value is not None and value != "":
            carried[option] = value if isinstance(value, str | int | float | bool) else str(value)
    if carried:
        app["attributes"] = carried
    inner.finish()


def _data_source(fields: Fields, ctx: Context, databases: Databases) -> str | None:
    sources = fields.items("DataSources")
    for index, item in enumerate(sources):
        inner = fields.nested("DataSources", item if isinstance(item, dict) else {}, index)
        kind = inner.text("Type")
        arn = inner.text("Arn") or ""
        database = inner.text("DatabaseName")
        inner.finish()
        if kind in (None, "None"):
            continue
        if kind != "RdsDbInstance":
            fields.note(
                f"DataSources[{index}]",
                f"{kind}: opsflow's data_source names an RDS "
                "DB instance only; the database on the stack's own instances is the "
                "recipes' to find",
            )
            continue
        if not ctx.ec2:
            fields.note(f"DataSources[{index}]", "not carried over: RDS, provider local")
            continue
        entry = databases.by_arn.get(arn) or _new_database(arn, databases, fields, index)
        if entry is None:
            continue
        if database is not None:
            entry.setdefault("database_name", database)
        if index > 0:
            fields.note(f"DataSources[{index}]", "opsflow apps have one data source: left out")
            continue
        return str(entry["name"])
    return None


def _new_database(
    arn: str, databases: Databases, fields: Fields, index: int
) -> dict[str, Any] | None:
    """An RDS DB instance an app names that no describe-rds-db-instances output listed."""
    resource = Resource(id=arn, source=fields.where, fields={"RdsDbInstanceArn": arn})
    inner = Fields(resource, databases.ctx.report, prefix=f"DataSources[{index}].")
    _database(inner, databases)
    return databases.by_arn.get(arn)
