#!/bin/sh
# Mounts tracefs at /sys/kernel/tracing when running as root and no tracefs is mounted, so the
# kernel-facing tests can run on a fresh machine. Does nothing otherwise.
if grep -q ' - tracefs ' /proc/self/mountinfo 2>/dev/null; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && [ -d /sys/kernel/tracing ]; then
  if mount -t tracefs nodev /sys/kernel/tracing; then
    echo "ensure-tracefs: mounted tracefs at /sys/kernel/tracing" >&2
  else
    echo "ensure-tracefs: could not mount tracefs; kernel tests will skip (or fail under CI=true)" >&2
  fi
else
  echo "ensure-tracefs: tracefs is not mounted and this is not root; kernel tests will skip" >&2
fi
