"""What a recipe on an instance would see, as `opsflow instance attributes` prints it
(OpsWorks' `opsworks-agent-cli get_json`), secure values masked (pure).

From the run context the stack answers for the instance and event (its `run_context`
query, the same functions a run's snapshot goes through):

    json    the $OPSFLOW_ATTRIBUTES document (shell; puppet's Hiera data)
    chef11  the chef node JSON (`node['opsworks']`, `node['deploy']`, ...)
    chef12  the data bags, {BAG: {ITEM_ID: item}}, as a Chef 12 stack stages them

The default is what the instance's own configuration manager gets. With an app (`--app`),
the documents are those of a deploy of that app: `deploy.APP` gets the keys the runner
adds in a deploy run (those only the instance knows, the release and the previous one,
shown as such), and in the data bags only that app's aws_opsworks_app item has
`deploy: true`. The command's own custom JSON is not in it (it is a deployment's).
"""

from __future__ import annotations

import posixpath
from typing import Any

from opsflow.attributes import chef_node, deep_merge
from opsflow.errors import InvalidInput
from opsflow.messages import InstanceView, RunContext
from opsflow.secrets import conceal
from opsflow.spec import AppSpec, ConfigurationManager, LifecycleEvent, StackSpec
from opsflow.starts import APP_EVENTS

FORMATS = ("chef11", "chef12", "json")
EVENTS = (*(e.value for e in LifecycleEvent), "execute_recipes", *sorted(APP_EVENTS))
APP_BAG = "aws_opsworks_app"
ON_THE_INSTANCE = "(set on the instance when the deploy runs)"


def default_format(context: RunContext) -> str:
    """What the instance's configuration manager gets: chef its node JSON, or its data
    bags on a Chef 12 stack; shell and puppet the attributes document."""
    if context.configuration_manager == ConfigurationManager.CHEF:
        return "chef12" if context.data_bags is not None else "chef11"
    return "json"


def app_on(spec: StackSpec, view: InstanceView, name: str) -> AppSpec:
    """The app `name`, deployed to `view` (one of its layers is the app's), or InvalidInput."""
    app = spec.app(name)
    if app is None:
        known = ", ".join(a.name for a in spec.apps) or "none"
        raise InvalidInput(f"--app: stack {spec.name} has no app {name!r} (apps: {known})")
    if not set(app.layers) & set(view.layers):
        raise InvalidInput(
            f"--app: app {name} is deployed to layer(s) {', '.join(app.layers)}, and "
            f"{view.hostname} is in {', '.join(view.layers) or 'no layer'}"
        )
    return app


def deploy_entry(app: AppSpec, root: str | None) -> dict[str, Any]:
    """`deploy.APP`'s keys the runner adds in a deploy of `app` (releases.deploy_attributes),
    as far as they are known before the run; secure values as they are (concealed later)."""
    deploy_to = app.deploy_to or posixpath.join(root or "/", "srv/www", app.name)
    source = app.source
    return {
        "deploy": {
            app.name: {
                "application": app.name,
                "action": "deploy",
                "revision": source.revision if source is not None else None,
                "release": ON_THE_INSTANCE,
                "release_path": ON_THE_INSTANCE,
                "previous_release": ON_THE_INSTANCE,
                "deploy_to": deploy_to,
                "current_path": posixpath.join(deploy_to, "current"),
                "environment": dict(app.environment),  # secure values: masked by conceal
            }
        }
    }


def document(
    context: RunContext, fmt: str, stack: str, app: AppSpec | None = None, root: str | None = None
) -> Any:
    """The document of `fmt` (one of FORMATS), secure values masked."""
    if fmt == "chef12":
        if context.data_bags is None:
            raise InvalidInput(
                f"--format chef12: stack {stack} is not a Chef 12 stack (chef: {{version: 12}}) "
                "with chef recipes on this instance, so its recipes get no data bags; "
                "use chef11 or json"
            )
        bags = context.data_bags
        if app is not None and APP_BAG in bags:
            items = {i: {**item, "deploy": i == app.name} for i, item in bags[APP_BAG].items()}
            bags = {**bags, APP_BAG: items}
        return conceal(bags)
    configuration = context.configuration
    if app is not None:
        configuration = deep_merge(configuration, deploy_entry(app, root))
    if fmt == "chef11":
        return conceal(chef_node(configuration))
    if fmt == "json":
        return conceal(configuration)
    raise InvalidInput(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
