#!/bin/sh
# preremove for the pmagent deb/rpm: stop and disable the agent on removal, not on upgrade.
# Bot containers belong to Docker and are left running; the state dir and user are kept.
set -e

remove=0
case "$1" in
	remove | purge) remove=1 ;; # deb
	0) remove=1 ;;              # rpm: no copies left after this one
esac

if [ "$remove" = 1 ] && [ -d /run/systemd/system ]; then
	systemctl disable --now pmagent.service >/dev/null 2>&1 || :
fi
