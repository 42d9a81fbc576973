#!/bin/sh
# The venue machine's Docker daemon, then nothing but waiting: the test works through
# `docker exec`. /var/lib/docker is a volume, so the daemon's overlay2 sits on the host's
# file system, not on this container's own overlay.
set -e
# The loop devices the hub's attendee disks mount (the container may use block major 7 and
# loop-control, but its /dev has no nodes for them).
[ -e /dev/loop-control ] || mknod /dev/loop-control c 10 237
for number in $(seq 0 127); do
    [ -e "/dev/loop$number" ] || mknod "/dev/loop$number" b 7 "$number"
done
# Its containers' cgroups under a parent of their own (this container's ID), apart from the
# outer daemon's and from another venue machine's; the test removes it.
dockerd --host=unix:///var/run/docker.sock --cgroup-parent="/venue-$(hostname)" \
    >/var/log/dockerd.log 2>&1 &
for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
done
docker info >/dev/null 2>&1 || { tail -20 /var/log/dockerd.log >&2; exit 1; }
echo "venue machine ready: $(docker --version), $(docker-compose --version)"
exec sleep infinity
