#!/usr/bin/env bash
# Install the Debian packages that `make demo`, `make test` and `make bench` use, if any is missing.
# Safe to run again: it does nothing when everything is there. Needs root (the house machines are).
set -euo pipefail

PACKAGES=(postfix swaks nmap openssh-server dnsmasq-base pflogsumm faketime iproute2 procps ssl-cert openssl python3-venv libsasl2-modules sasl2-bin libnet-ssleay-perl libio-socket-ssl-perl systemd man-db)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup-system: missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
  exit 1
fi
echo "setup-system: installing ${missing[*]}" >&2
# Postfix asks where it sits; answer for a plain internet site so /etc/postfix/main.cf exists
# (test instances are listed in its alternate_config_directories).
echo "postfix postfix/main_mailer_type select Internet Site" | debconf-set-selections
echo "postfix postfix/mailname string $(hostname -f 2>/dev/null || echo localhost.localdomain)" | debconf-set-selections
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's postinst may start the default instance; tests start their own instances only.
postfix stop >/dev/null 2>&1 || true
