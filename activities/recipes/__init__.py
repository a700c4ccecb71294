"""The recipe runner: `cookbook::recipe` run over SSH with shell, Puppet or Chef.

    runner.py    the run_recipes activity: claim, start or re-attach, wait, stop
    payload.py   the tar a command carries on its stdin; the cookbooks digest
    managers.py  shell, puppet and chef: their files in the run directory, their steps
    releases.py  app releases: checks, `deploy.{app}` attributes, the release step
    remote.py    the remote commands and run.sh, composed from scripts/*.sh and their values
    scripts/     the remote shell scripts (POSIX sh, package data, shellcheck-clean)
    report.py    what the remote scripts print, parsed once into a typed model
    errors.py    the errors a run raises and their messages
    layout.py    where a run's files live on the instance

The configuration manager is the run context's (`RunContext.configuration_manager`); the
recipe files follow opsflow.recipes.recipe_file:

    shell   {cookbooks}/c/r.sh                run with `sh` (or its shebang when executable)
    puppet  {cookbooks}/m/manifests/r.pp      `puppet apply --detailed-exitcodes -e 'include
                                              m::r'` (0 and 2 succeed), the cookbooks dir
                                              is the modulepath
    chef    {cookbooks}/c/recipes/r.rb        `cinc-client`/`chef-client -z` (client.rb) or
                                              `chef-solo` (solo.rb), `-o 'recipe[c::r]'`,
                                              the cookbooks dir is the cookbook_path

One tool invocation per recipe, in order, in the instance root, stdin from /dev/null; the
first recipe that fails ends the run and is recorded as the failed one.

On the instance, under `{root}/var/lib/opsflow/`:

    cookbooks/{sha256}/   the worker's cookbooks directory, staged once per content hash
    nap.fifo              a FIFO nobody writes to: waits pause on it (see scripts/wait.sh)
    runs/{run_id}/        one run: run.sh, attributes.json, recipes, manager, owner, pid,
                          log, started, finished, recipe (the one running, or the one that
                          failed), exit, cancelled (marker); puppet: hiera.yaml; chef:
                          node.json, client.rb, solo.rb, chef-nodes/; Chef 12 stacks:
                          data_bags/BAG/ITEM.json (dirs 0700, files 0600; data_bag_path)
    puppet/               Puppet's confdir, vardir, codedir, logdir, rundir, publicdir
    chef/                 Chef's cache, backups, repo paths and keys

Every instance (several local instances share a host) has its own Puppet and Chef state:
nothing is read from or written to /etc/puppet, /var/lib/puppet, /etc/chef or ~/.chef.

What a recipe sees, for every manager: the environment OPSFLOW_ATTRIBUTES (the stack
configuration JSON file), OPSFLOW_EVENT, OPSFLOW_INSTANCE, OPSFLOW_ROOT, OPSFLOW_RUN_ID,
OPSFLOW_STACK. Puppet also: facts opsflow_stack, opsflow_instance, opsflow_event,
opsflow_root, opsflow_attributes (FACTER_* variables), and Hiera (hiera.yaml in the run
directory, Hiera 5, one level: attributes.json with the json_data backend), so a manifest
reads `lookup('opsflow.layers')`, `lookup('opsflow.instance.hostname')`,
`lookup('shop.greeting')`. Beware: Hiera interpolates `%{...}` in those values. Chef: the
document is the node JSON (`node['opsflow']`, and `node['opsworks']` as an alias for
ported OpsWorks cookbooks: opsflow's keys with any custom `opsworks` keys on top);
node_path is per run, so no attribute survives from one run to the next. A command's
own custom JSON (RecipeRunInput.custom_json, `--custom-json`) is merged last, over the
configuration and the deploy attributes, into all of these.

Exactly once, even when the worker dies or the connection drops mid-run: the run is
claimed by an atomic `mkdir runs/{run_id}` and started detached (setsid nohup), so it
survives both; a retried activity (same run_id) finds the directory and re-attaches to
the run instead of starting it again. A run directory without `exit` whose process is
gone died before it could finish: it is renamed to `{run_id}.lost-N` and the run starts
afresh (recipes are expected to be idempotent). Each new claim removes finished run
directories beyond the newest KEEP_REMOTE_RUNS.

Cancellation: only a cancellation that was requested (the workflow cancelled the
activity) stops the run on the instance: its process group gets TERM, then KILL after
CANCEL_GRACE_SECONDS; `exit` says 130 and a `cancelled` marker is left; the log is saved
and the cancellation re-raised. A worker shutting down, a heartbeat timeout or a task
cancelled otherwise leaves the run going: the next attempt re-attaches to it.

SSH round trips: one command per run, normally. Its stdin is a tar of the run
files, never the command line (an argv string is limited to 128 KiB; attributes may be
larger); it is extracted aside under `tmp/`, then:
1. if the payload carries `cookbooks/` and `cookbooks/{sha256}` is missing, it is staged
   (renamed into place: all or nothing);
2. if the cookbooks are still missing it prints `staged=0` and stops, before claiming;
3. it claims the run directory, or finds an earlier attempt's (done, running: re-attach;
   lost: renamed aside, claimed afresh); only a fresh claim moves the run files in and
   starts run.sh; a re-attach writes nothing;
4. it waits for `exit` for up to 30 s and prints the outcome and the WHOLE log (the
   worker saves it in the artifact store, see runtime.run_logs; the tail is cut locally).
The cookbooks ride along when this worker has not seen them staged on the instance yet
and their payload is at most SPECULATIVE_STAGE_BYTES; otherwise a `staged=0` answer
costs one more command that carries them. A run still going after 30 s costs one more
command per 30 s chunk. So: staged and fresh, 1 command; first run of small cookbooks,
1; of big ones, 2; a retry, 1 (plus the chunks); no SFTP. `stage_only` (for
update_custom_cookbooks) is steps 1-2 alone: 1 command (2 for big unseen cookbooks).
The content hash is RunContext.cookbooks_digest when the stack knows it, else the worker
hashes the tree. The tree itself is the artifact store's blob RunContext.cookbooks_blob
(AppRelease.source_blob for an app's code), unpacked on whichever worker runs the run
(trees.py); a stack resolved before the store has only cookbooks_dir / source_dir, a
directory on the worker that fetched it.

Apps (RecipeRunInput.app, an AppRelease), OpsWorks style, inside the same run (one
exec, exactly once; the release step is part of run.sh). On the instance:

    {root}/var/lib/opsflow/apps/{sha256}/   the app's code from the worker
                                            (AppRelease.source_dir), staged once per
                                            content hash like the cookbooks (`app/` in
                                            the payload; `app=0` asks for it)
    {deploy_to}/releases/{release}/         one release: a copy (cp -a) of the staged code
    {deploy_to}/current -> releases/{release}  relative symlink, switched atomically (ln
                                            -sfn to a temp name, mv -T)

deploy_to defaults to {root}/srv/www/{app}. Releases sort by name
(opsflow.releases.release_name).
- deploy: create releases/{release} (an empty one without source_dir), run the recipes,
  and only when every one succeeded switch `current` to it and remove the releases
  beyond the newest KEEP_RELEASES (never the current one). A failure (or cancellation)
  leaves `current` alone and removes the new release.
- rollback: switch `current` to the release before it by name, then run the recipes
  against it (a recipe failure leaves it switched); with no earlier release the run
  fails: "no earlier release of APP on HOST to roll back to".
- undeploy: run the recipes, then remove `current` and every release.
Recipes see OPSFLOW_APP, OPSFLOW_DEPLOY_TO, OPSFLOW_RELEASE, OPSFLOW_RELEASE_PATH,
OPSFLOW_PREVIOUS_RELEASE (empty when none) and the app's environment (exported, quoted;
opsflow's own names win a clash), and the attributes carry `deploy.{app}`: application,
action, revision, release, release_path, deploy_to, current_path, previous_release,
environment, and for an app with a data_source `database` (type, engine, host, port,
database, username, password: OpsWorks' `node[:deploy][app][:database]`). Release,
previous release and release path are only known on the instance: the worker writes
unguessable placeholders that run.sh fills in. The decision (release,
previous) is kept in the run directory (`app`), so a run started afresh after a lost
attempt reuses it: a rollback never goes back twice. The result says which release is now
current (`release`) and which was (`previous_release`); an app step that fails is a
RecipeFailed whose message is the step's own.

Secrets: the app's secure environment values and its database password are plaintext
on the instance, where recipes need them: in run.sh, attributes.json and node.json, all
mode 0600 (owner only) in the run directory (kept with the newest KEEP_REMOTE_RUNS runs).
Everything the runner returns or keeps (the saved log, the log tail, failure messages)
passes through opsflow.secrets.redact: each value shows as `******`. A value printed
across several lines is stamped line by line and may escape redaction.

What can go wrong: a recipe fails or does not exist, or its tool (puppet, chef) is not
on the instance (RecipeFailed, non-retryable, message naming stack/instance/recipe with
the tool's own error line, the log tail as first detail); a bad recipe name, run id,
digest, app name, release name, deploy_to or environment variable name (InvalidInput,
non-retryable); SSH trouble (see activities.ssh: retryable unless
the host key does not match); the run process vanished without an exit code (RunLost,
retryable: the next attempt starts it afresh).

The instance needs a POSIX sh with GNU coreutils/util-linux (setsid, mkfifo, mv -T,
mktemp, tar with gzip) and /proc: any mainstream Linux; plus puppet or chef for those.
"""
