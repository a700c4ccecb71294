"""Read a stack file into a StackSpec, or fail naming the file, the field and the problem.

Everything that needs the user's disk happens here, before any request leaves the
machine: YAML parsing, sealing secure app environment values, schema validation,
resolving the cookbooks and app source directories, reading SSH private keys, checking
that every named recipe exists in the cookbooks, and packing each source directory into
the artifact store (apply) or only computing its digest (plan), so the workers fetch it
by digest rather than by a path on this machine.

Secure values (`NAME: {value: s3cret, secure: true}` under `apps[*].environment`, and
`rds[*].password`, which must be one) are sealed (runtime/sealing.py: the workers'
public key) before the spec is validated, so the StackSpec only ever holds ciphertext and
no validation error can quote a plaintext. SSH private keys (registered hosts'
`ssh.key_file`, ec2's `ssh_key_file`) are read here and travel sealed the same way, so no
worker reads a key by a path from the stack file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import yaml
from pydantic import ValidationError

from opsflow.errors import InvalidInput, SpecError
from opsflow.importing.model import fill_in
from opsflow.importing.placeholders import placeholders
from opsflow.recipes import inventory
from opsflow.spec import (
    CookbookSource,
    Ec2Options,
    InstanceSpec,
    StackSpec,
    missing_recipes,
    recipe_references,
)
from runtime.cookbook_tree import read_tree
from runtime.sealing import Sealer

if TYPE_CHECKING:
    from runtime.artifacts import ArtifactStore

ENVIRONMENT_FORMS = "a string, {value: STRING} or {value: STRING, secure: true}"
SECRET_FORM = "must be written {value: STRING, secure: true}"


# An instance nested under its layer, or one of the stack-level list (a subclass).
InstanceT = TypeVar("InstanceT", bound=InstanceSpec)

KEY_FILE_LIMIT = 64 * 1024  # far above any SSH private key: refuse reading a wrong file


def load_stack_file(
    path: str | Path, sealer: Sealer | None = None, *, store: ArtifactStore | None = None
) -> StackSpec:
    """The stack file as a StackSpec; `sealer` seals its secure values (default: with the
    key runtime/sealing.py chooses, found at the first secure value). Each source
    directory (cookbooks, apps) is packed and carries its digest (`artifact`): put in
    `store` (apply: before the update is sent, so any worker fetches it), or only computed
    without one (plan)."""
    file = Path(path)
    name = str(path)
    sealer = sealer or Sealer()
    raw = _read_yaml(file, name)
    _refuse_placeholders(raw, name)
    raw = _encrypt_app_environments(raw, name, sealer)
    raw = _encrypt_rds_passwords(raw, name, sealer)
    raw = _encrypt_ssl_keys(raw, name, sealer)
    try:
        spec = StackSpec.model_validate(raw)
    except ValidationError as err:
        raise SpecError(name, [_describe(e) for e in err.errors()]) from None
    _check_region(spec, name)
    spec = _resolve_cookbooks(spec, file, name, store)
    spec = _resolve_key_files(spec, file, name, sealer)
    spec = _resolve_ec2_key_files(spec, file, name, sealer)
    return _resolve_app_sources(spec, file, name, store)


def _refuse_placeholders(raw: dict[str, Any], name: str) -> None:
    """An imported file's `<FILL IN: reason>` placeholders (opsflow/importing): each one a
    problem naming its field and reason, before the file is sealed or validated."""
    found = placeholders(raw)
    if found:
        raise SpecError(
            name,
            [
                f"{field}: {fill_in(reason)} must be replaced (`opsflow import` left it "
                "for a person to fill in)"
                for field, reason in found
            ],
        )


def _check_region(spec: StackSpec, name: str) -> None:
    """An ec2 stack's region must be one AWS has (botocore's own list: no AWS call)."""
    if spec.region is None:
        return
    import boto3  # only ec2 stacks pay for importing it

    session = boto3.session.Session()
    known = {
        region
        for partition in session.get_available_partitions()
        for region in session.get_available_regions("ec2", partition_name=partition)
    }
    if spec.region not in known:
        raise SpecError(name, [f"region: {spec.region!r} is not an AWS region"])


def _read_yaml(file: Path, name: str) -> dict[str, Any]:
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(name, ["file does not exist"]) from None
    except OSError as err:
        raise SpecError(name, [f"cannot read: {err.strerror}"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise SpecError(name, [f"{where}not valid YAML: {problem}"]) from None
    if not isinstance(raw, dict):
        raise SpecError(name, ["the file must be a YAML mapping with at least `name:`"])
    return raw


def _encrypt_app_environments(raw: dict[str, Any], name: str, sealer: Sealer) -> dict[str, Any]:
    """`raw` with each app environment value as the spec holds it: a plain string, or the
    dumped SecureValue of a `{value: ..., secure: true}` entry.

    Problems are reported naming `apps[i].environment.NAME`, never quoting a value (which
    may be a plaintext). Shapes other than a list of app mappings are left to the schema.
    """
    apps = raw.get("apps")
    if not isinstance(apps, list):
        return raw
    problems: list[str] = []
    new_apps: list[Any] = []
    for index, app in enumerate(apps):
        if not isinstance(app, dict) or "environment" not in app:
            new_apps.append(app)
            continue
        environment = app["environment"]
        field = f"apps[{index}].environment"
        if environment is None:
            environment = {}
        if not isinstance(environment, dict):
            # Not quoted: the list or value given may hold plaintexts.
            problems.append(f"{field}: must be a mapping of NAME: {ENVIRONMENT_FORMS}")
            new_apps.append({k: v for k, v in app.items() if k != "environment"})
            continue
        resolved: dict[Any, Any] = {}
        for var, value in environment.items():
            where = f"{field}.{var}"
            if isinstance(value, str):
                resolved[var] = value
                continue
            if not isinstance(value, dict):
                problems.append(
                    f"{where}: must be {ENVIRONMENT_FORMS} (quote numbers and booleans)"
                )
                continue
            extra = sorted(str(k) for k in value if k not in ("value", "secure"))
            secure = value.get("secure", False)
            if "value" not in value or extra:
                what = f"unknown key(s) {', '.join(extra)}" if extra else "`value` is missing"
                problems.append(f"{where}: {what}; must be {ENVIRONMENT_FORMS}")
            elif not isinstance(value["value"], str):
                problems.append(f"{where}.value: must be a string (quote numbers and booleans)")
            elif not isinstance(secure, bool):
                problems.append(f"{where}.secure: must be true or false")
            elif secure:
                resolved[var] = sealer.seal(value["value"]).model_dump()
            else:
                resolved[var] = value["value"]
        new_apps.append({**app, "environment": resolved})
    if problems:
        raise SpecError(name, problems)
    return {**raw, "apps": new_apps}


def _encrypt_rds_passwords(raw: dict[str, Any], name: str, sealer: Sealer) -> dict[str, Any]:
    """`raw` with each `rds[i].password` as the dumped SecureValue the spec holds."""
    entries = raw.get("rds")
    if not isinstance(entries, list):
        return raw
    problems: list[str] = []
    sealed = [
        _seal_field(entry, f"rds[{index}]", "password", sealer, problems)
        for index, entry in enumerate(entries)
    ]
    if problems:
        raise SpecError(name, problems)
    return {**raw, "rds": sealed}


def _encrypt_ssl_keys(raw: dict[str, Any], name: str, sealer: Sealer) -> dict[str, Any]:
    """`raw` with each `apps[i].ssl.key` as the dumped SecureValue the spec holds."""
    apps = raw.get("apps")
    if not isinstance(apps, list):
        return raw
    problems: list[str] = []
    sealed = [
        {**app, "ssl": _seal_field(app["ssl"], f"apps[{index}].ssl", "key", sealer, problems)}
        if isinstance(app, dict) and "ssl" in app
        else app
        for index, app in enumerate(apps)
    ]
    if problems:
        raise SpecError(name, problems)
    return {**raw, "apps": sealed}


def _seal_field(entry: Any, where: str, field: str, sealer: Sealer, problems: list[str]) -> Any:
    """`entry` with its `field` (`{value: ..., secure: true}`) as the dumped SecureValue the
    spec holds. A plain string, or a value not marked secure, is a problem naming the field
    and never quoting it (the field is dropped): a secret never sits in the spec in clear."""
    if not isinstance(entry, dict) or field not in entry:
        return entry
    value = entry[field]
    where = f"{where}.{field}"
    rest = {k: v for k, v in entry.items() if k != field}
    if not isinstance(value, dict):
        problems.append(f"{where}: {SECRET_FORM}, not a plain value")
    elif sorted(str(k) for k in value) != ["secure", "value"]:
        problems.append(f"{where}: {SECRET_FORM} (no other key)")
    elif value["secure"] is not True:
        problems.append(f"{where}: must be secure: {SECRET_FORM}")
    elif not isinstance(value["value"], str) or not value["value"]:
        problems.append(f"{where}.value: must be a non-empty string (quote numbers)")
    else:
        return {**rest, field: sealer.seal(value["value"]).model_dump()}
    return rest


def _describe(error: Any) -> str:
    """One pydantic error as `field.path: problem`."""
    field = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"])
    field = field.lstrip(".")
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "missing":
        message = "required key is missing"
    elif error["type"] == "enum":
        message = f"{error.get('input')!r} is not one of {error['ctx']['expected']}"
    return f"{field}: {message}" if field else message


def _resolve_cookbooks(
    spec: StackSpec, file: Path, name: str, store: ArtifactStore | None
) -> StackSpec:
    refs = recipe_references(spec)
    if spec.cookbooks is None:
        if refs:
            raise SpecError(
                name, [f"{refs[0][0]}: recipe {refs[0][1]!r} is named but `cookbooks` is not set"]
            )
        return spec
    if spec.cookbooks.source is None:
        # git and archive sources are fetched by the worker when the stack is applied;
        # their recipes are checked there, before any instance starts.
        return spec
    directory = _local_path(file.parent, spec.cookbooks.source, "cookbooks.source", "directory")
    if isinstance(directory, str):
        raise SpecError(name, [directory])
    try:
        tree = read_tree(directory)
    except OSError as err:
        where = f"{err.filename}: {err.strerror}" if err.filename else str(err)
        raise SpecError(name, [f"cookbooks.source: cannot read {where}"]) from None
    problems = missing_recipes(spec, inventory(tree))
    if problems:
        raise SpecError(name, problems)
    artifact = _artifact(directory, "cookbooks.source", name, store)
    update = {"source": str(directory), "artifact": artifact}
    return spec.model_copy(update={"cookbooks": spec.cookbooks.model_copy(update=update)})


def _resolve_app_sources(
    spec: StackSpec, file: Path, name: str, store: ArtifactStore | None
) -> StackSpec:
    """Each app's source directory made absolute (relative to the stack file) and packed,
    as for the cookbooks; git and archive sources are fetched by the worker."""
    apps = []
    problems: list[str] = []
    for index, app in enumerate(spec.apps):
        if app.source is None or app.source.source is None:
            apps.append(app)
            continue
        field = f"apps[{index}].source.source"
        directory = _local_path(file.parent, app.source.source, field, "directory")
        if isinstance(directory, str):
            problems.append(directory)
            continue
        artifact = _artifact(directory, field, name, store)
        update = {"source": str(directory), "artifact": artifact}
        source = app.source.model_copy(update=update)
        apps.append(app.model_copy(update={"source": source}))
    if problems:
        raise SpecError(name, problems)
    return spec.model_copy(update={"apps": apps}) if spec.apps else spec


def repack(source: CookbookSource | None) -> str | None:
    """A `source` directory packed into the artifact store again, as it is now, when this
    machine has it (a deploy or update_custom_cookbooks takes the code as it is now, as
    OpsWorks fetches again); None for git and archive sources (the worker fetches those)
    and for a directory elsewhere (the workers keep what the last apply packed)."""
    from runtime.artifacts import open_store

    if source is None or source.source is None or not Path(source.source).is_dir():
        return None
    return pack_directory(Path(source.source), open_store())


def pack_directory(directory: Path, store: ArtifactStore) -> str:
    """`directory` packed into `store`; the digest workers fetch it by. InvalidInput (exit
    2) naming what cannot be packed; StoreUnavailable (exit 1) naming the store."""
    from runtime import tree_cache

    try:
        return tree_cache.publish(store, directory, cache=False)
    except OSError as err:
        where = f"{err.filename}: {err.strerror}" if err.filename else str(err)
        raise InvalidInput(f"{directory}: cannot read {where}") from None


def _artifact(directory: Path, field: str, name: str, store: ArtifactStore | None) -> str:
    """The digest workers fetch `directory` by: packed into `store`, or only computed.
    What cannot be packed (a link leading out of the tree, a fifo) is the field's problem;
    an unavailable store raises StoreUnavailable (exit 1, naming it)."""
    from runtime import packing, tree_cache  # tarfile and gzip only for a stack file

    try:
        if store is None:
            return packing.tree_digest(directory)
        return tree_cache.publish(store, directory, cache=False)
    except InvalidInput as err:
        raise SpecError(name, [f"{field}: {err}"]) from None
    except OSError as err:
        where = f"{err.filename}: {err.strerror}" if err.filename else str(err)
        raise SpecError(name, [f"{field}: cannot read {where}"]) from None


def _resolve_key_files(spec: StackSpec, file: Path, name: str, sealer: Sealer) -> StackSpec:
    """Each registered host's key file read (relative to the stack file) and its key
    sealed into `key`; the path, made absolute, stays for display. A file that is not
    there or not a private key is refused now, not when the worker first logs in."""
    problems: list[str] = []

    def resolved(instance: InstanceT, where: str) -> InstanceT:
        if instance.ssh is None:
            return instance
        field = f"{where}.ssh.key_file"
        found = read_private_key(file.parent, instance.ssh.key_file, field)
        if isinstance(found, str):
            problems.append(found)
            return instance
        path, text, key_id = found
        update = {"key_file": str(path), "key": sealer.seal(text), "key_id": key_id}
        return instance.model_copy(update={"ssh": instance.ssh.model_copy(update=update)})

    layers = [
        layer.model_copy(
            update={
                "instances": [
                    resolved(instance, f"layers[{li}].instances[{ii}]")
                    for ii, instance in enumerate(layer.instances)
                ]
            }
        )
        for li, layer in enumerate(spec.layers)
    ]
    stack_level = [
        resolved(instance, f"instances[{index}]") for index, instance in enumerate(spec.instances)
    ]
    if problems:
        raise SpecError(name, problems)
    if not spec.layers and not spec.instances:
        return spec
    return spec.model_copy(update={"layers": layers, "instances": stack_level})


def _resolve_ec2_key_files(spec: StackSpec, file: Path, name: str, sealer: Sealer) -> StackSpec:
    """Each `ssh_key_file` of the stack's, a layer's or an instance's ec2 options read and
    its key sealed into `ssh_key`, as for registered hosts."""
    problems: list[str] = []

    def resolved(options: Ec2Options | None, field: str) -> Ec2Options | None:
        if options is None or options.ssh_key_file is None:
            return options
        found = read_private_key(file.parent, options.ssh_key_file, f"{field}.ssh_key_file")
        if isinstance(found, str):
            problems.append(found)
            return options
        path, text, key_id = found
        update = {"ssh_key_file": str(path), "ssh_key": sealer.seal(text), "ssh_key_id": key_id}
        return options.model_copy(update=update)

    layers = []
    for li, layer in enumerate(spec.layers):
        instances = [
            instance.model_copy(
                update={"ec2": resolved(instance.ec2, f"layers[{li}].instances[{ii}].ec2")}
            )
            for ii, instance in enumerate(layer.instances)
        ]
        ec2 = resolved(layer.ec2, f"layers[{li}].ec2")
        layers.append(layer.model_copy(update={"ec2": ec2, "instances": instances}))
    stack_level = [
        instance.model_copy(update={"ec2": resolved(instance.ec2, f"instances[{index}].ec2")})
        for index, instance in enumerate(spec.instances)
    ]
    stack_ec2 = resolved(spec.ec2, "ec2")
    if problems:
        raise SpecError(name, problems)
    return spec.model_copy(update={"ec2": stack_ec2, "layers": layers, "instances": stack_level})


def read_private_key(base: Path, value: str, field: str) -> tuple[Path, str, str] | str:
    """The SSH private key at `value` (relative to the directory `base`, `~` expanded): its
    absolute path, its text and its public fingerprint (`SHA256:...`, as ssh-keygen -l
    shows it); else the problem, naming `field` and the file (never the file's content).
    An unencrypted OpenSSH or PEM key (ed25519, ecdsa, rsa) is what workers can load."""
    path = _local_path(base, value, field, "file")
    if isinstance(path, str):
        return path
    try:
        with path.open("rb") as handle:
            data = handle.read(KEY_FILE_LIMIT + 1)
    except OSError as err:
        return f"{field}: {path} cannot be read: {err.strerror or err}"
    problem = None if len(data) <= KEY_FILE_LIMIT else "is too big to be an SSH private key"
    key_id = None if problem else _public_fingerprint(data)
    if problem is None and key_id is None:
        problem = "is not an unencrypted SSH private key (ed25519, ecdsa or rsa)"
    if problem is not None or key_id is None:
        return f"{field}: {path} {problem}"
    return path, data.decode("ascii"), key_id


def _public_fingerprint(data: bytes) -> str | None:
    """The `SHA256:...` fingerprint of the private key in `data`; None if it is not an
    unencrypted private key of a type workers load."""
    import base64
    import hashlib

    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    try:
        data.decode("ascii")
        if b"OPENSSH PRIVATE KEY" in data:
            key: Any = serialization.load_ssh_private_key(data, password=None)
        else:
            key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnicodeError, UnsupportedAlgorithm):
        return None  # TypeError: encrypted with a passphrase
    if not isinstance(
        key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    ):
        return None
    line = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    blob = base64.b64decode(line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


_SHOWN_CHARS = 80


def _local_path(
    base: Path, value: str, field: str, kind: Literal["directory", "file"]
) -> Path | str:
    """`value` (`~` expanded for a file) made absolute relative to the directory `base`
    (the stack file's), if it is a `kind` there; else the problem (a str), naming `field`.
    A name the file system refuses (NUL, too long, `~nobody`) is a problem of the field,
    not a crash of the loader."""
    shown = value if len(value) <= _SHOWN_CHARS else f"{value[:_SHOWN_CHARS]}..."
    try:
        given = Path(value).expanduser() if kind == "file" else Path(value)
        path = (base / given).resolve()
        found = path.is_dir() if kind == "directory" else path.is_file()
    except (OSError, ValueError, RuntimeError) as err:
        # RuntimeError: expanduser of an unknown user's `~name`.
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        return f"{field}: {shown!r} cannot be used as a path: {reason}"
    if not found:
        return f"{field}: {shown!r} is not a {kind} ({path})"
    return path
