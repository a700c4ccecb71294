"""`opsflow import`: an OpsWorks stack as a stack file, from a CloudFormation template or
from saved `aws opsworks describe-*` output, with a report of everything not carried over.

The stack file goes to standard output unless `-o` names a file (an existing one only with
`--force`); the report goes to standard error unless `--report` names a file. Everything
is read and mapped before anything is written: bad input writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from opsflow.importing.model import OpsWorksStack, Report


WITHHELD = (
    "a secret given with --parameter is not printed: write the stack file with -o FILE "
    "(readable by you only) to keep it"
)


@click.group("import")
def import_group() -> None:
    """Turn an OpsWorks stack into a stack file (CloudFormation or describe-* output)."""


def _pairs(option: str, values: tuple[str, ...]) -> dict[str, str]:
    """`KEY=VALUE` options as a dict; a value `@FILE` is the file's text (a secret need not
    be on the command line), one trailing newline dropped."""
    found: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint=option)
        if key in found:
            raise click.BadParameter(f"{key} is given twice", param_hint=option)
        if text.startswith("@"):
            try:
                text = Path(text[1:]).read_text(encoding="utf-8").removesuffix("\n")
            except (OSError, UnicodeDecodeError) as err:
                problem = f"{key}: cannot read {text[1:]}: {err}"
                raise click.BadParameter(problem, param_hint=option) from None
        found[key] = text
    return found


def _sources(values: tuple[str, ...]) -> dict[str, str]:
    """`--source NAME=PATH`: each PATH an existing directory, made absolute (the stack file
    may be written anywhere)."""
    sources = _pairs("--source", values)
    for name, path in sources.items():
        where = Path(path).expanduser()
        if not where.is_dir():
            raise click.BadParameter(f"{name}: {path} is not a directory", param_hint="--source")
        sources[name] = str(where.resolve())
    return sources


def _common(command: Callable[..., None]) -> Callable[..., None]:
    options = [
        click.option("--stack-name", help="the stack's name (default: from the input)"),
        click.option("--region", help="the AWS region (AWS::Region; the stack's, on ec2)"),
        click.option(
            "--provider",
            type=click.Choice(["ec2", "local"]),
            default="ec2",
            show_default=True,
            help="local: EC2-only settings go to the report, to try the stack here",
        ),
        click.option(
            "--source",
            "sources",
            multiple=True,
            metavar="NAME=PATH",
            help="replace the cookbooks (NAME cookbooks) or an app's source by a directory",
        ),
        click.option(
            "-o", "output", type=click.Path(dir_okay=False), help="write the stack file here"
        ),
        click.option("--force", is_flag=True, help="with -o: replace an existing file"),
        click.option("--report", type=click.Path(dir_okay=False), help="write the report here"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@import_group.command("cloudformation")
@click.argument("template", type=click.Path(dir_okay=False))
@click.option(
    "--parameter",
    "parameters",
    multiple=True,
    metavar="KEY=VALUE|KEY=@FILE",
    help="a template parameter's value (@FILE: read from a file)",
)
@_common
def import_cloudformation(template: str, parameters: tuple[str, ...], **options: Any) -> None:
    """An OpsWorks stack from a CloudFormation TEMPLATE (JSON or YAML) as a stack file."""
    from client.importers.template_files import read_template_file
    from opsflow.importing.cloudformation import read_template

    values = _pairs("--parameter", parameters)
    sources = _sources(options["sources"])
    _refuse_existing(options["output"], options["force"])
    document = read_template_file(Path(template))
    stack_name = options["stack_name"] or Path(template).stem.split(".")[0]
    found, report = read_template(
        document,
        where=template,
        parameters=values,
        stack_name=stack_name,
        region=options["region"],
    )
    _emit(found, report, sources, options, origin=template)


@import_group.command("describe")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@_common
def import_describe(files: tuple[str, ...], **options: Any) -> None:
    """An OpsWorks stack from saved `aws opsworks describe-*` FILES (any subset, any
    order: stacks, layers, instances, apps, elastic-load-balancers, rds-db-instances,
    time-based-auto-scaling, load-based-auto-scaling) as a stack file."""
    from client.importers.template_files import read_template_file
    from opsflow.importing.describe import read_describe

    sources = _sources(options["sources"])
    _refuse_existing(options["output"], options["force"])
    documents = [(file, read_template_file(Path(file))) for file in files]
    found, report = read_describe(documents)
    _emit(found, report, sources, options, origin=", ".join(files))


def _refuse_existing(output: str | None, force: bool) -> None:
    if output is not None and Path(output).exists() and not force:
        raise click.BadParameter(f"{output} exists; add --force to replace it", param_hint="-o")
    if force and output is None:
        raise click.BadParameter("--force goes with -o FILE", param_hint="--force")


def _emit(
    found: OpsWorksStack,
    report: Report,
    sources: dict[str, str],
    options: dict[str, Any],
    *,
    origin: str,
) -> None:
    """Map, then write the stack file and the report (each whole, or nothing)."""
    import yaml

    from opsflow.importing.mapping import stack_file
    from opsflow.importing.placeholders import withhold_secrets
    from opsflow.spec import Provider

    mapped = stack_file(
        found,
        report,
        provider=Provider(options["provider"]),
        sources=sources,
        stack_name=options["stack_name"],
        region=options["region"],
    )
    secret_paths: list[str] = []
    if options["output"] is None:
        # A secret (a --parameter of a NoEcho parameter, say) is not printed.
        mapped, secret_paths = withhold_secrets(mapped, WITHHELD)
        for path in secret_paths:
            report.add("(output)", path, WITHHELD)
    header = (
        f"# Imported by `opsflow import` from {origin}.\n"
        '# Each "<FILL IN: ...>" needs a person\'s decision: the stack file is refused until\n'
        "# it is replaced. The report lists everything not carried over.\n"
    )
    text = header + yaml.safe_dump(mapped, sort_keys=False, allow_unicode=True, width=100)
    lines = report.render()
    _write(options["output"], text, private=True)
    if options["report"] is not None:
        _write(options["report"], lines)
    else:
        click.echo(lines, err=True, nl=False)
    if options["output"] is not None:
        click.echo(f"wrote {options['output']} ({len(report.lines)} report line(s))", err=True)


def _write(path: str | None, text: str, *, private: bool = False) -> None:
    """To standard output, or to `path` whole (a temporary file renamed into place);
    `private`: readable by its owner only (a stack file may hold secrets until loaded)."""
    if path is None:
        click.echo(text, nl=False)
        return
    target = Path(path)
    partial = target.with_name(f".{target.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        if private:
            partial.chmod(0o600)
        partial.replace(target)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise click.FileError(path, hint=err.strerror or str(err)) from None
