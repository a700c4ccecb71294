# shellcheck shell=sh
# Helpers of every command (shell builtins only: they run in every wait loop).
# `readf NAME FILE`: NAME= the file's first line, or empty (a builtin, unlike $(cat FILE)).
readf() { eval "$1="; [ -f "$2" ] && IFS= read -r "$1" < "$2"; return 0; }
# Whether a pid runs; a zombie nobody reaped yet counts as dead.
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  s=; read -r s 2>/dev/null < "/proc/$1/stat"; s=${s##*) }; [ "${s%% *}" != Z ]
}
