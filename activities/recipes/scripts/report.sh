# shellcheck shell=sh
# In the run directory, once `exit` exists: the outcome, `---`, the whole log
# (activities/recipes/report.py reads it).
echo state=done
# shellcheck disable=SC2154 # readf assigns v
for f in exit recipe recipes manager started finished; do readf v $f; echo "$f=$v"; done
if [ -e cancelled ]; then echo cancelled=1; fi
if [ -e app_release ]; then readf v app_release; echo "release=$v"; fi
if [ -e app_previous ]; then readf v app_previous; echo "previous_release=$v"; fi
if [ -e app_error ]; then readf v app_error; echo "app_error=$v"; fi
echo ---
cat log 2>/dev/null
exit 0
