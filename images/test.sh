#!/bin/sh
# codex-box/test: busybox-static and nothing else. Builds in about a second.
# Usage: test.sh ROOTFS_DIR   (the directory is filled; build.py tars and imports it)
set -eu
root=$1
BUSYBOX=${BUSYBOX:-/bin/busybox}
mkdir -p "$root/bin" "$root/usr/bin" "$root/sbin" "$root/etc" "$root/root" "$root/home" \
         "$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/var/tmp" "$root/work"
chmod 1777 "$root/tmp" "$root/var/tmp"   # a tmpfs over /tmp takes this mode
cp "$BUSYBOX" "$root/bin/busybox"
for applet in $("$BUSYBOX" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
ln -sf ../../bin/busybox "$root/usr/bin/env"
cat > "$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > "$root/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP
