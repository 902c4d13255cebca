#!/usr/bin/env bash
# Builds a Debian package of leasehold-agent with dpkg-deb: the binary, the
# systemd unit, the example configuration and the man page generated from the CLI.
# Usage: packaging/build-deb.sh [BINARY] [OUT_DIR]
#   BINARY  defaults to target/release/leasehold-agent (built if missing)
#   OUT_DIR defaults to target/debian
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/target/release/leasehold-agent}
out=${2:-$root/target/debian}
if [ ! -x "$bin" ]; then
  (cd "$root" && cargo build --release -p leasehold-agent)
fi
version=$("$bin" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

install -D -s -m 0755 "$bin" "$stage/usr/bin/leasehold-agent"
install -D -m 0644 "$root/examples/systemd/leasehold-agent.service" "$stage/lib/systemd/system/leasehold-agent.service"
install -D -m 0644 "$root/examples/standalone/agent.ini" "$stage/usr/share/doc/leasehold-agent/examples/standalone/agent.ini"
install -D -m 0644 "$root/examples/standalone/networks.json" "$stage/usr/share/doc/leasehold-agent/examples/standalone/networks.json"
install -D -m 0644 "$root/README.md" "$stage/usr/share/doc/leasehold-agent/README.md"
mkdir -p "$stage/usr/share/man/man1"
"$bin" man | gzip -9n > "$stage/usr/share/man/man1/leasehold-agent.1.gz"
mkdir -p "$stage/DEBIAN"
cat > "$stage/DEBIAN/control" <<CONTROL
Package: leasehold-agent
Version: $version
Architecture: $arch
Maintainer: Leasehold developers <leasehold@example.invalid>
Depends: dnsmasq-base, dnsmasq-utils, iproute2
Recommends: openvswitch-switch
Section: net
Priority: optional
Description: DHCP agent for OpenStack-style networks
 Leasehold is a drop-in replacement for neutron-dhcp-agent, written in Rust,
 and also runs standalone from a file of networks.
CONTROL
mkdir -p "$out"
deb="$out/leasehold-agent_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zgzip --build "$stage" "$deb" >/dev/null
echo "$deb"
