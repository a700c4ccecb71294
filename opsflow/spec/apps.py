"""Apps: their source, environment (secure values), domains, SSL and database (RDS)."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from opsflow import aws, names
from opsflow.secrets import SecureValue
from opsflow.spec.fields import (
    LayerName,
    StrictModel,
    matches_pattern,
)
from opsflow.spec.layers import (
    HealthCheckSpec,
)
from opsflow.spec.sources import CookbookSource

AppName = Annotated[str, AfterValidator(matches_pattern(names.STACK_NAME, "app name"))]
EnvName = Annotated[
    str, AfterValidator(matches_pattern(names.ENV_NAME, "environment variable name"))
]


# Stands in for a password given in any other form than a SecureValue, so that no
# validation error can quote it (pydantic puts each failing field's input in its errors).
_NOT_SECURE = "(not shown)"


def _secure_only(value: Any) -> Any:
    """A password must reach the spec encrypted: a plain string would travel in clear."""
    if not isinstance(value, SecureValue | dict):  # (a plain value is _NOT_SECURE here)
        raise ValueError(
            "must be a secure value, written {value: ..., secure: true} in the stack file "
            "(a plain string is refused: the secret would sit in the spec in plain text)"
        )
    return value


def _hide_plain(data: Any, field: str) -> Any:
    """`data` with its `field` replaced by _NOT_SECURE unless it is a SecureValue (or its
    dump), so the refusal that follows cannot quote a plaintext secret."""
    if isinstance(data, dict) and field in data:
        value = data[field]
        dumped = isinstance(value, dict) and value.keys() == {"secure", "ciphertext"}
        if not (isinstance(value, SecureValue) or dumped):
            return {**data, field: _NOT_SECURE}
    return data


class RdsSpec(StrictModel):
    """An existing RDS DB instance registered with the stack (OpsWorks' RDS layer): apps
    that name it in `data_source` get its endpoint, port, engine and database name in
    their deploy attributes (`deploy.{app}.database`), with `username` and `password`.
    The endpoint, port, engine and database name are read from AWS at `stack apply`."""

    name: Annotated[str, AfterValidator(matches_pattern(names.STACK_NAME, "rds name"))] = Field(
        description="what apps' `data_source` names"
    )
    identifier: str = Field(description="the RDS DB instance identifier")
    username: str = Field(min_length=1, max_length=128)
    password: Annotated[SecureValue, BeforeValidator(_secure_only)]
    database_name: str | None = Field(
        default=None, min_length=1, max_length=128, description="default: the instance's DBName"
    )

    @model_validator(mode="before")
    @classmethod
    def _hide_a_plain_password(cls, data: Any) -> Any:
        return _hide_plain(data, "password")

    @model_validator(mode="after")
    def _identifier_shape(self) -> RdsSpec:
        if not aws.RDS_IDENTIFIER.fullmatch(self.identifier):
            raise ValueError(
                f"identifier: {self.identifier!r} is not an RDS DB instance identifier "
                f"(must match {aws.RDS_IDENTIFIER.pattern})"
            )
        return self


class AppType(StrEnum):
    """OpsWorks' app types (Chef 11 `deploy.APP.application_type`); Chef 12 said `other`."""

    OTHER = "other"
    PHP = "php"
    RAILS = "rails"
    NODEJS = "nodejs"
    JAVA = "java"
    STATIC = "static"
    AWS_FLOW_RUBY = "aws-flow-ruby"


_DOMAIN = re.compile(
    r"^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
    r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
)
# OpsWorks: a document root starts with a-z, A-Z, 0-9, _ or -, relative to the release.
_DOCUMENT_ROOT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_./-]{0,255}$")
_PEM_CERTIFICATE = re.compile(
    r"-----BEGIN CERTIFICATE-----\s+[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----"
)


def _domain(value: str) -> str:
    if len(value) > 253 or not _DOMAIN.fullmatch(value):
        raise ValueError(f"{value!r} is not a domain name (like www.example.com)")
    return value


def _document_root(value: str) -> str:
    if not _DOCUMENT_ROOT.fullmatch(value) or ".." in value.split("/"):
        raise ValueError(
            f"{value!r} must be a path inside the release (starting with a-z, A-Z, 0-9, _ "
            "or -, no `..`), like public"
        )
    return value


def _certificate(value: str) -> str:
    if not _PEM_CERTIFICATE.search(value):
        raise ValueError("must hold a PEM certificate (-----BEGIN CERTIFICATE----- ...)")
    return value


Domain = Annotated[str, AfterValidator(_domain)]
PemCertificate = Annotated[str, AfterValidator(_certificate)]


class SslSpec(StrictModel):
    """An app's SSL: the certificate and chain in plain text, the key a secure value (the
    loader seals `key: {value: ..., secure: true}`; a plain key is refused)."""

    certificate: PemCertificate
    key: Annotated[SecureValue, BeforeValidator(_secure_only)]
    chain: PemCertificate | None = Field(default=None, description="intermediate CAs")

    @model_validator(mode="before")
    @classmethod
    def _hide_a_plain_key(cls, data: Any) -> Any:
        return _hide_plain(data, "key")


AttributeValue = str | int | float | bool | None


class AppSpec(StrictModel):
    """An app deployed to the instances of its layers, release by release.

    `environment` values are plain strings or, for secrets, `{value: ..., secure: true}` in
    the stack file; the CLI encrypts those when it loads the file, so the spec only ever
    carries ciphertext (a SecureValue) from then on.
    """

    name: AppName
    layers: list[LayerName] = Field(min_length=1)
    source: CookbookSource | None = Field(
        default=None, description="the app's code: a directory, a git revision or an archive"
    )
    environment: dict[EnvName, str | SecureValue] = Field(default_factory=dict)
    deploy_to: str | None = Field(default=None, description="default: {root}/srv/www/{name}")
    health_check: HealthCheckSpec | None = None
    data_source: str | None = Field(
        default=None, description="the `rds` entry whose database the app uses"
    )
    type: AppType = Field(default=AppType.OTHER, description="OpsWorks' application_type")
    domains: list[Domain] = Field(default_factory=list, description="default: [name]")
    ssl: SslSpec | None = None
    document_root: Annotated[str, AfterValidator(_document_root)] | None = Field(
        default=None, description="relative to the release, like public"
    )
    attributes: dict[str, AttributeValue] = Field(
        default_factory=dict, description="OpsWorks app attributes (aws_opsworks_app)"
    )

    @model_validator(mode="after")
    def _absolute_deploy_to(self) -> AppSpec:
        if self.deploy_to is not None and (
            not self.deploy_to.startswith("/") or ".." in self.deploy_to.split("/")
        ):
            raise ValueError(f"deploy_to: {self.deploy_to!r} must be an absolute path")
        return self
