# shellcheck shell=sh
# The app's release step of run.sh (see activities/recipes/releases.py): app_prepare runs
# before the recipes (decide the release and the previous one, create or switch to the
# release, fill in the attributes, export OPSFLOW_APP...), app_complete after them
# (deploy: switch `current`, prune; undeploy: remove `current` and the releases).
# `app_fail MESSAGE` ends the run with the message; `app_failed` (called by finish on any
# failure) removes a release this run created that is not current. The decision
# (release, previous) is written to the run directory first, so a run started afresh
# after a lost attempt reuses it (a rollback never goes back two releases).
# Values: OPSFLOW_APP_NAME, OPSFLOW_APP_ACTION, OPSFLOW_APP_HOST, OPSFLOW_APP_DEPLOY_TO,
# OPSFLOW_APP_RELEASES (its releases dir), OPSFLOW_APP_RELEASE (deploy, rollback --to: the
# release; else empty), OPSFLOW_APP_CODE (the staged code, or empty),
# OPSFLOW_KEEP_RELEASES, OPSFLOW_TOKEN_RELEASE, OPSFLOW_TOKEN_PREVIOUS, OPSFLOW_TOKEN_PATH
# (placeholders in the attributes), OPSFLOW_PATH_PREFIX (the releases dir as a sed
# replacement in JSON), OPSFLOW_RUN_DIR.
app_fail() {
  printf '%s\n' "$1" > app_error; : > recipe; say "$1"; finish 1
}
app_current() {
  t=$(readlink "$app_dir/current" 2>/dev/null) || return 0
  r=${t##*/}
  case $r in '' | .* | *[!A-Za-z0-9._-]*) return 0 ;; esac
  [ ! -d "$app_releases/$r" ] || printf '%s\n' "$r"
}
app_list() {
  # shellcheck disable=SC2010 # only plain release names pass the grep: no odd file names
  ls -1 "$app_releases" 2>/dev/null | grep -E '^[A-Za-z0-9][A-Za-z0-9._-]*$' | LC_ALL=C sort
}
app_before() {
  { app_list; printf '%s\n' "$1"; } | LC_ALL=C sort -u |
    awk -v c="$1" '($0 "") == (c "") { print p; exit } { p = $0 }'
}
app_switch() {
  ln -sfn "releases/$1" "$app_dir/.current.$$" && mv -T "$app_dir/.current.$$" "$app_dir/current"
}
app_decide() { printf 'APP_REL=%s\nAPP_PREV=%s\n' "$APP_REL" "$APP_PREV" > app; }
app_json() { if [ -n "$1" ]; then printf '"%s"' "$1"; else printf null; fi; }
app_path() {
  if [ -n "$1" ]; then printf '"%s%s"' "$OPSFLOW_PATH_PREFIX" "$1"; else printf null; fi
}

app_prepare() {
  what="app $OPSFLOW_APP_NAME"
  app_dir=$OPSFLOW_APP_DEPLOY_TO
  app_releases=$OPSFLOW_APP_RELEASES
  APP_REL=$OPSFLOW_APP_RELEASE APP_PREV='' app_new='' app_decision=''
  for f in ../"${OPSFLOW_RUN_DIR##*/}".lost-*/app; do [ -f "$f" ] && app_decision=$f; done
  case $OPSFLOW_APP_ACTION in
    deploy) app_prepare_deploy ;;
    rollback) app_prepare_rollback ;;
    start | stop | restart) app_prepare_current ;;
    *) APP_PREV=$(app_current) APP_REL=$(app_current) ;;
  esac
  for f in attributes.json node.json; do
    [ -f "$f" ] || continue
    # shellcheck disable=SC2015 # app_fail when either the sed or the mv fails
    ( umask 077 && sed -e "s|\"$OPSFLOW_TOKEN_RELEASE\"|$(app_json "$APP_REL")|g" \
        -e "s|\"$OPSFLOW_TOKEN_PREVIOUS\"|$(app_json "$APP_PREV")|g" \
        -e "s|\"$OPSFLOW_TOKEN_PATH\"|$(app_path "$APP_REL")|g" "$f" > "$f.tmp" ) &&
      mv "$f.tmp" "$f" || app_fail "$what: cannot write $f"
  done
  export OPSFLOW_APP="$OPSFLOW_APP_NAME" OPSFLOW_DEPLOY_TO="$OPSFLOW_APP_DEPLOY_TO"
  export OPSFLOW_RELEASE="$APP_REL" OPSFLOW_PREVIOUS_RELEASE="$APP_PREV" OPSFLOW_RELEASE_PATH=
  [ -z "$APP_REL" ] || OPSFLOW_RELEASE_PATH="$app_releases/$APP_REL"
}

app_complete() {
  case $OPSFLOW_APP_ACTION in
    deploy) app_complete_deploy ;;
    rollback | start | stop | restart)
      printf '%s\n' "$APP_REL" > app_release
      printf '%s\n' "$APP_PREV" > app_previous
      ;;
    *) app_complete_undeploy ;;
  esac
}

app_prepare_deploy() {
  if [ -n "$app_decision" ]; then
    # shellcheck disable=SC1090 # the decision an earlier attempt wrote (app_decide)
    . "$app_decision"; say "$what: as decided by an earlier attempt: previous ${APP_PREV:-none}"
  else
    APP_PREV=$(app_current)
    [ "$APP_PREV" != "$APP_REL" ] || APP_PREV=$(app_before "$APP_REL")
  fi
  app_decide
  if [ "$(app_current)" = "$APP_REL" ]; then
    say "$what: release $APP_REL is already current"
  else
    new="$app_releases/.$APP_REL.new"
    # shellcheck disable=SC2015 # app_fail when any of the three fails
    mkdir -p "$app_releases" && rm -rf "$new" "${app_releases:?}/$APP_REL" && mkdir "$new" ||
      app_fail "$what: cannot create release $APP_REL in $app_releases"
    if [ -n "$OPSFLOW_APP_CODE" ]; then
      cp -a "$OPSFLOW_APP_CODE"/. "$new/" || app_fail "$what: cannot copy its code into $new"
    fi
    mv -T "$new" "$app_releases/$APP_REL" || app_fail "$what: cannot create release $APP_REL"
    app_new=$APP_REL
    say "$what: release $APP_REL created (previous ${APP_PREV:-none})"
  fi
  # shellcheck disable=SC2317 # called by finish (run.sh) on a failure
  app_failed() {
    if [ -n "$app_new" ] && [ "$(app_current)" != "$app_new" ]; then
      rm -rf "${app_releases:?}/$app_new"
      say "$what: release $app_new removed; current stays ${APP_PREV:-unset}"
      app_new=
    fi
  }
}

app_complete_deploy() {
  app_switch "$APP_REL" ||
    app_fail "$what: cannot switch $app_dir/current to $APP_REL"
  app_new=
  say "$what: current -> releases/$APP_REL"
  rels=$(app_list) i=0 cur=$(app_current)
  # shellcheck disable=SC2086 # split on purpose: release names (app_list) have no blanks
  set -- $rels; total=$#
  for r in $rels; do
    i=$((i + 1)); [ $i -le $((total - OPSFLOW_KEEP_RELEASES)) ] || break
    [ "$r" = "$cur" ] && continue
    rm -rf "${app_releases:?}/$r" &&
      say "$what: release $r removed (the newest $OPSFLOW_KEEP_RELEASES are kept)"
  done
  printf '%s\n' "$APP_REL" > app_release; printf '%s\n' "$APP_PREV" > app_previous
}

app_prepare_rollback() {
  if [ -n "$app_decision" ]; then
    # shellcheck disable=SC1090 # the decision an earlier attempt wrote (app_decide)
    . "$app_decision"; say "$what: as decided by an earlier attempt: back to $APP_REL"
  else
    APP_PREV=$(app_current)
    if [ -n "$APP_REL" ]; then
      [ -d "$app_releases/$APP_REL" ] ||
        app_fail "no release $APP_REL of $OPSFLOW_APP_NAME on $OPSFLOW_APP_HOST to roll back to"
    else
      [ -z "$APP_PREV" ] || APP_REL=$(app_before "$APP_PREV")
    fi
    [ -n "$APP_REL" ] ||
      app_fail "no earlier release of $OPSFLOW_APP_NAME on $OPSFLOW_APP_HOST to roll back to"
  fi
  app_decide
  app_switch "$APP_REL" || app_fail "$what: cannot switch $app_dir/current to $APP_REL"
  say "$what: rolled back: current -> releases/$APP_REL (was $APP_PREV)"
}

# start, stop, restart: the current release stays; the recipes see it.
app_prepare_current() {
  APP_PREV=$(app_current) APP_REL=$(app_current)
  [ -n "$APP_REL" ] ||
    app_fail "$OPSFLOW_APP_NAME is not deployed on $OPSFLOW_APP_HOST: nothing to $OPSFLOW_APP_ACTION"
}

app_complete_undeploy() {
  # shellcheck disable=SC2015 # app_fail when either removal fails
  rm -f "$app_dir/current" && rm -rf "$app_releases" ||
    app_fail "$what: cannot remove $app_dir/current and $app_releases"
  rmdir "$app_dir" 2>/dev/null
  say "$what: undeployed (was ${APP_PREV:-not deployed})"
  : > app_release; printf '%s\n' "$APP_PREV" > app_previous
}
