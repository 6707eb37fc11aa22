#!/bin/sh
# maasflow-entrypoint: the docker image's entrypoint, run by tini (PID 1, which reaps every
# orphaned child) as `maasflow-entrypoint [maasflow arguments]`.
#
# Started as root, it copies each file in /run/secrets (docker or compose secrets, or a bind
# mount such as -v /etc/maasflow/maas_api_key:/run/secrets/maas_api_key:ro, however
# root-only the file is on the host) into a private in-memory directory owned by the
# image's user (uid 10001, mode 0500, files 0400), points $CREDENTIALS_DIRECTORY at it (where
# maasflow looks for maas_api_key, provision_token, power_token, power_pass and
# power_ack_pass by name, as under systemd's LoadCredential=), then drops to uid/gid 10001
# with no groups, no capabilities and no_new_privs, and execs maasflow. Nothing it handles
# reaches the environment, a command line or the image's writable layer (/dev/shm is a tmpfs).
# Started as any other user (docker run --user ...), it execs maasflow as that user: the
# secrets must then be readable by it.
#
# The copies are made at start: after rotating a secret on the host, `docker restart`.
# MAASFLOW_SECRETS_DIR and MAASFLOW_CREDENTIALS_DIR move the two directories (tests).
set -eu

user=10001
secrets=${MAASFLOW_SECRETS_DIR:-/run/secrets}
credentials=${MAASFLOW_CREDENTIALS_DIR:-/dev/shm/maasflow-credentials}

if [ "$(id -u)" != 0 ]; then
  exec maasflow "$@"
fi

umask 077
rm -rf "$credentials"
if ! mkdir -p "$credentials"; then
  echo "maasflow-entrypoint: cannot create $credentials for the secrets; is /dev/shm mounted?" >&2
  exit 2
fi
for secret in "$secrets"/*; do
  [ -f "$secret" ] || continue
  cp "$secret" "$credentials/${secret##*/}"
done
chown -R "$user:$user" "$credentials"
chmod -R u=rX,go= "$credentials"
export CREDENTIALS_DIRECTORY="$credentials"

exec setpriv --reuid="$user" --regid="$user" --clear-groups --inh-caps=-all --no-new-privs \
  maasflow "$@"
