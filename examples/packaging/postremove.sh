#!/bin/sh
# postremove for the pmagent deb/rpm: forget the removed unit. The pmagent user and
# /var/lib/pmagent (this host's identity and key) are kept so a reinstall keeps its enrollment.
set -e

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
