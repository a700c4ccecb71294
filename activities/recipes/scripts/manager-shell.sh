# shellcheck shell=sh
# Shell recipes: run with `sh`, or with their shebang when executable.
# shellcheck disable=SC2034 # read by run.sh's step
tool() { missing=''; }
invoke() { if [ -x "$2" ]; then exec "$2"; else exec sh "$2"; fi; }
