# shellcheck shell=sh
# Read the payload (stdin) aside into $in; stage the cookbooks (and the app's code) if it
# has them and they are missing; say whether they are staged (stop there if not:
# `cookbooks=0`/`app=0` say which is missing).
# Values: z (tar's gzip flag), RUNS, TMP, COOKBOOKS, APP_CODE (empty: no app code).
mkdir -p "$RUNS" "$TMP" "${COOKBOOKS%/*}" || exit 90
in=$(mktemp -d "$TMP/in.XXXXXX") || exit 90
tar -x"${z:-}"f - -C "$in" --no-same-owner || { rm -rf "$in"; exit 92; }
if [ ! -d "$COOKBOOKS" ] && [ -d "$in/cookbooks" ]; then
  mv -T "$in/cookbooks" "$COOKBOOKS" 2>/dev/null && echo new=1
fi
s=1
[ -d "$COOKBOOKS" ] || { echo cookbooks=0; s=0; }
if [ -n "$APP_CODE" ]; then
  mkdir -p "${APP_CODE%/*}" || exit 90
  if [ ! -d "$APP_CODE" ] && [ -d "$in/app" ]; then
    mv -T "$in/app" "$APP_CODE" 2>/dev/null && echo app_new=1
  fi
  [ -d "$APP_CODE" ] || { echo app=0; s=0; }
fi
if [ $s = 0 ]; then rm -rf "$in"; echo staged=0; exit 0; fi
echo staged=1
