#!/usr/bin/env bash
# Runs CMD as UID:GID on a host where user namespaces are disabled for real.
# user.max_user_namespaces is a per-user-namespace sysctl: we enter a user
# namespace owned by root with an identity map (root here keeps every
# capability in it), set the limit to 0 there, drop to UID:GID and exec CMD.
# The host's own setting is untouched, so tests running alongside are not.
# Usage (as root): without-userns.sh UID GID CMD [ARGS...]
set -euo pipefail
if [ "${1:-}" = --stage2 ]; then
  # Inside the namespace, after the map was written: re-exec'd, so as uid 0 we
  # hold CAP_SYS_RESOURCE in this namespace and may write the sysctl.
  shift
  echo 0 > /proc/sys/user/max_user_namespaces
  uid=$1 gid=$2; shift 2
  exec setpriv --reuid="$uid" --regid="$gid" --clear-groups -- "$@"
fi
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
mkfifo "$dir/go"
self=$(readlink -f "$0")
unshare -U bash -c 'read -r _ < "$1"; shift; exec bash "$@"' _ "$dir/go" "$self" --stage2 "$@" &
pid=$!
for _ in $(seq 200); do
  [ "$(readlink /proc/$pid/ns/user 2>/dev/null)" != "$(readlink /proc/self/ns/user)" ] && break
  sleep 0.01
done
echo '0 0 4294967295' > "/proc/$pid/uid_map"
echo '0 0 4294967295' > "/proc/$pid/gid_map"
echo go > "$dir/go"
wait "$pid"
