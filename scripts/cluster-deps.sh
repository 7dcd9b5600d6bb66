#!/usr/bin/env bash
# Make the system tools of cluster mode available for tests, CI and local runs:
# etcd + etcdctl (Debian's etcd-server, etcd-client: 3.4) and nginx (Debian's
# nginx: 1.22), installed when missing (scripts/apt-deps.sh). confd is not
# packaged by Debian: scripts/confd.sh builds it.
#
# Usage: scripts/cluster-deps.sh
exec "$(dirname "$0")/apt-deps.sh" cluster-deps.sh etcd:etcd-server etcdctl:etcd-client nginx:nginx
