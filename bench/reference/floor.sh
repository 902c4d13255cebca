#!/bin/bash
# The floor for a full sync: only the bare per-network work, sequential —
# namespace, an OVS internal port moved into it, an address, link up, and a
# dnsmasq serving a one-line hosts file. No agent, no RPC, no rendering.
# usage: floor.sh <prefix> <count> <bridge>; prints nothing; `floor.sh
# --clean <prefix> <count> <bridge>` removes what a run made.
set -u
if [ "$1" = "--clean" ]; then
    shift
    p=$1 n=$2 br=$3
    for i in $(seq 1 "$n"); do
        ns=$p-$i
        [ -f /tmp/$ns.pid ] && kill -9 "$(cat /tmp/$ns.pid)" 2>/dev/null
        rm -f /tmp/$ns.pid /tmp/$ns.hosts
        ip netns del "$ns" 2>/dev/null
        ovs-vsctl --if-exists del-port "$br" "tf${p: -5}$i" 2>/dev/null
    done
    exit 0
fi
p=$1 n=$2 br=$3
set -e
for i in $(seq 1 "$n"); do
    ns=$p-$i
    dev=tf${p: -5}$i
    ip netns add "$ns"
    ovs-vsctl add-port "$br" "$dev" -- set Interface "$dev" type=internal
    ip link set "$dev" netns "$ns"
    ip -n "$ns" addr add 198.51.100.2/24 dev "$dev"
    ip -n "$ns" link set "$dev" up
    echo "fa:16:3e:00:00:10,198.51.100.10" > /tmp/$ns.hosts
    ip netns exec "$ns" dnsmasq --no-hosts --no-resolv --port=0 --bind-interfaces \
        --interface="$dev" --except-interface=lo --pid-file=/tmp/$ns.pid \
        --dhcp-range=198.51.100.0,static,255.255.255.0 --dhcp-hostsfile=/tmp/$ns.hosts \
        --leasefile-ro
done
