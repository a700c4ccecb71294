# shellcheck shell=sh
# run.sh's part for stack users (opsflow/users.py decides who): before the recipes of a
# setup or configure run, `users_converge` makes this instance's Unix users what the stack
# file says. Idempotent: a second run changes nothing (and says so).
# - a missing user is created (useradd -m -s /bin/bash, -u with a uid; password `*`: no
#   password, yet not locked, so sshd without PAM lets its key in);
# - ~/.ssh/authorized_keys (0600, ~/.ssh 0700, owned by the user) holds exactly the
#   stack's key for a user opsflow created; an account that existed before keeps its
#   other lines and gets the stack's key line added (the one opsflow wrote is replaced
#   when the key changes);
# - /etc/sudoers.d/opsflow-USER (0440, checked with `visudo -cf` where visudo exists)
#   with sudo, removed without;
# - a user that left the file (or this instance's layers) loses its sudoers entry and its
#   stack key; a user opsflow created is also removed (userdel, its processes killed);
#   its home directory is KEPT for its data, owned by root and 0700 from then on, so no
#   later account that gets the same uid can read it. An account opsflow did not create
#   is never deleted.
# The state: OPSFLOW_USERS_STATE (root-only) has a file per managed user: `created` or
# `adopted` (the account existed before), then the key line opsflow wrote.
# Values: OPSFLOW_USERS (the users file: `NAME UID SUDO KEY` lines, UID `-` for the next
# free one, SUDO 1 or 0), OPSFLOW_USERS_STATE. Uses say and finish from run.sh; a failure
# is reported like an app step's (app_error: a step of opsflow's, not a recipe).
users_fail() { printf '%s\n' "$1" > app_error; : > recipe; say "$1"; finish 1; }
users_home() { getent passwd "$1" | cut -d: -f6; }
users_line() { sed -n "${2}p" "$1" 2>/dev/null; }
# FILE MODE OWNER NEW: put the file NEW in place of FILE (mode, owner) unless equal;
# returns 0 when it changed FILE.
users_put() {
  chmod "$2" "$4" && chown -h "$3" "$4" || return 2
  if cmp -s "$4" "$1"; then rm -f "$4"; return 1; fi
  mv -f "$4" "$1" || return 2
}
users_keys() { # NAME HOW OLD KEY: write the user's authorized_keys
  home=$(users_home "$1"); group=$(id -g "$1")
  case $home in /?*) ;; *) users_fail "users: $1 has no home directory to hold its key" ;; esac
  [ -d "$home" ] || { mkdir -p "$home" && chown "$1:$group" "$home" && chmod 0700 "$home"; }
  # A link where ~/.ssh belongs (the user may have made one) is not followed as root.
  if [ -L "$home/.ssh" ] || { [ -e "$home/.ssh" ] && [ ! -d "$home/.ssh" ]; }; then
    rm -f "$home/.ssh"
  fi
  { mkdir -p "$home/.ssh" && chown -h "$1:$group" "$home/.ssh" && chmod 0700 "$home/.ssh"; } ||
    users_fail "users: cannot make $home/.ssh for $1"
  file=$home/.ssh/authorized_keys
  new=$(mktemp "$home/.ssh/.opsflow.XXXXXX") || users_fail "users: cannot write $file"
  if [ "$2" = created ] || [ -L "$file" ] || [ ! -f "$file" ]; then
    printf '%s\n' "$4" > "$new"
  else
    { grep -vxF -e "$3" -e "$4" "$file"; printf '%s\n' "$4"; } > "$new"
  fi
  users_put "$file" 0600 "$1:$group" "$new"
  case $? in
    0) say "users: $1: authorized_keys written"; changed=1 ;;
    2) rm -f "$new"; users_fail "users: cannot write $file" ;;
  esac
}
users_sudo() { # NAME SUDO
  sudoers=/etc/sudoers.d/opsflow-$1
  if [ "$2" != 1 ]; then
    if [ -e "$sudoers" ]; then rm -f "$sudoers"; say "users: $1: sudo removed"; changed=1; fi
    return 0
  fi
  mkdir -p /etc/sudoers.d
  # A name with a dot is one sudo skips in sudoers.d: the check's file is never read.
  new=/etc/sudoers.d/.opsflow-$1.new
  printf '%s ALL=(ALL) NOPASSWD:ALL\n' "$1" > "$new"
  if command -v visudo > /dev/null 2>&1 && ! out=$(visudo -cf "$new" 2>&1); then
    rm -f "$new"; users_fail "users: the sudoers entry of $1 does not check: $out"
  fi
  users_put "$sudoers" 0440 0:0 "$new"
  case $? in
    0) say "users: $1: sudo granted ($sudoers)"; changed=1 ;;
    2) rm -f "$new"; users_fail "users: cannot write $sudoers" ;;
  esac
}
users_remove() { # NAME: it left the file (or this instance's layers)
  state=$OPSFLOW_USERS_STATE/$1
  how=$(users_line "$state" 1); old=$(users_line "$state" 2)
  rm -f "/etc/sudoers.d/opsflow-$1"
  home=$(users_home "$1")
  if [ "$how" = created ]; then
    if id -u "$1" > /dev/null 2>&1; then
      if command -v pkill > /dev/null 2>&1; then pkill -KILL -u "$1" 2>/dev/null; fi
      i=0
      until out=$(userdel "$1" 2>&1); do
        i=$((i + 1)); [ $i -lt 20 ] || users_fail "users: cannot remove $1: $out"
        sleep 0.1
      done
    fi
    case $home in
      /?*) if [ -d "$home" ] && [ ! -L "$home" ]; then
             rm -f "$home/.ssh/authorized_keys"; chown -R 0:0 "$home"; chmod 0700 "$home"
           fi ;;
    esac
    say "users: $1 removed (its home ${home:-?} kept, now root's)"
  else
    case $home in
      /?*) file=$home/.ssh/authorized_keys
           if [ -n "$old" ] && [ -f "$file" ] && [ ! -L "$file" ] && grep -qxF -e "$old" "$file"; then
             new=$(mktemp "$home/.ssh/.opsflow.XXXXXX") &&
               { grep -vxF -e "$old" "$file" > "$new"; users_put "$file" 0600 "$1:" "$new"; }
           fi ;;
    esac
    say "users: $1 no longer managed: its stack key and sudo removed (the account stays: opsflow did not create it)"
  fi
  rm -f "$state"
  changed=1
}
users_converge() {
  changed=0
  for tool in useradd userdel getent; do
    command -v "$tool" > /dev/null 2>&1 ||
      users_fail "users: $tool is not installed on this instance (Debian package passwd)"
  done
  # Every check first: a refusal changes nothing.
  while IFS=' ' read -r name uid sudo key; do
    if [ "$sudo" = 1 ] && ! command -v sudo > /dev/null 2>&1; then
      users_fail "users: $name has sudo: true, but sudo is not installed on this instance (install the sudo package)"
    fi
    : "$uid" "$key"
  done < "$OPSFLOW_USERS"
  { mkdir -p "$OPSFLOW_USERS_STATE" && chmod 0700 "$OPSFLOW_USERS_STATE"; } ||
    users_fail "users: cannot make $OPSFLOW_USERS_STATE"
  for state in "$OPSFLOW_USERS_STATE"/*; do
    [ -f "$state" ] || continue
    name=${state##*/}
    case $name in '' | *[!a-z0-9_-]*) continue ;; esac
    # Names are [a-z0-9_-]: safe in a pattern.
    grep -q "^$name " "$OPSFLOW_USERS" || users_remove "$name"
  done
  wanted=
  while IFS=' ' read -r name uid sudo key; do
    state=$OPSFLOW_USERS_STATE/$name
    how=$(users_line "$state" 1); old=$(users_line "$state" 2)
    if ! id -u "$name" > /dev/null 2>&1; then
      set -- -m -s /bin/bash -p '*'
      [ "$uid" = - ] || set -- "$@" -u "$uid"
      home=/home/$name
      had_home=0; [ ! -d "$home" ] || had_home=1
      out=$(useradd "$@" "$name" 2>&1) || users_fail "users: cannot create $name: $out"
      # A user that comes back gets back the home it left (root's while it was away).
      [ $had_home = 0 ] || chown -R "$name:$(id -g "$name")" "$(users_home "$name")"
      how=created; changed=1
      say "users: $name created (uid $(id -u "$name"))"
    elif [ -z "$how" ]; then
      how=adopted; changed=1
      say "users: $name existed: its key and sudo are managed, the account is never removed"
    fi
    if [ "$(printf '%s\n%s' "$how" "$key")" != "$(cat "$state" 2>/dev/null)" ]; then
      { printf '%s\n%s\n' "$how" "$key" > "$state.new" && mv -f "$state.new" "$state"; } ||
        users_fail "users: cannot record $name in $OPSFLOW_USERS_STATE"
    fi
    users_keys "$name" "$how" "$old" "$key"
    users_sudo "$name" "$sudo"
    wanted="$wanted $name"
  done < "$OPSFLOW_USERS"
  # A stack without users (the common case) says nothing.
  [ $changed = 1 ] || [ -z "$wanted" ] || say "users: up to date:$wanted"
}
