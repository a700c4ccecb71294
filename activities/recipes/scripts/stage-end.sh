# shellcheck shell=sh
# Staging alone (update_custom_cookbooks): the payload is no longer needed.
# shellcheck disable=SC2154 # in: set by stage.sh, before this in the same command
rm -rf "$in"
