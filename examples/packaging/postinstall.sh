#!/bin/sh
# postinstall for the pmagent deb/rpm: create the pmagent system user, let it reach the Docker
# socket, and make systemd see the unit. It does not enable or start the service: the host needs
# a server and an enrollment token first (see /etc/pocketmolt/pmagent.yaml).
set -e

if ! getent group pmagent >/dev/null 2>&1; then
	groupadd --system pmagent
fi
if ! getent passwd pmagent >/dev/null 2>&1; then
	useradd --system --gid pmagent --no-create-home --home-dir /var/lib/pmagent \
		--shell /usr/sbin/nologin --comment "PocketMolt host agent" pmagent
fi
# Docker group membership is root-equivalent; pmagent needs it to drive the engine. The unit
# also sets SupplementaryGroups=docker; membership here serves `sudo -u pmagent pmagent …`.
if getent group docker >/dev/null 2>&1; then
	usermod --append --groups docker pmagent
else
	echo "pmagent: no docker group yet; install Docker before starting pmagent" >&2
fi

install -d -m 0755 /etc/pocketmolt
install -d -o pmagent -g pmagent -m 0700 /var/lib/pmagent

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
	# On upgrade, restart a running agent onto the new binary.
	if systemctl is-active --quiet pmagent.service; then
		systemctl restart pmagent.service || :
	fi
fi

if [ -e /var/lib/pmagent/identity.json ]; then
	exit 0
fi
cat <<'MSG'
pmagent installed. To join this host to pmd:
  1. set server in /etc/pocketmolt/pmagent.yaml
  2. write a token from `pmctl hosts token create <name>` to /etc/pocketmolt/enroll-token
     (chown root:pmagent, chmod 0640)
  3. systemctl enable --now pmagent
MSG
