#!/bin/sh
# Entry point of a NAT router container: a home router between a LAN and
# the testnet's internet. Needs cap_add NET_ADMIN and the sysctl
# net.ipv4.ip_forward=1.
#
#   WAN_NET   the internet's subnet (the router's interface in it is the WAN)
#   LAN_NET   the LAN's subnet
#   NAT       cone (MASQUERADE: keeps source ports, hole punching works) or
#             symmetric (MASQUERADE --random: a new port per destination)
#
# Unsolicited packets to the router itself are dropped, as home routers do:
# otherwise a peer's first hole-punch packet leaves a conntrack entry that
# makes MASQUERADE move the LAN host's own packet to another port.
set -eu

iface_in() {
	ip -o -4 addr show to "$1" | { read -r _ dev _ || true; echo "${dev:-}"; }
}
wan=$(iface_in "$WAN_NET")
lan=$(iface_in "$LAN_NET")
if [ -z "$wan" ] || [ -z "$lan" ]; then
	echo "router.sh: no interface in WAN_NET=$WAN_NET or LAN_NET=$LAN_NET" >&2
	ip -o -4 addr show >&2
	exit 1
fi

random=""
case "${NAT:-cone}" in
cone) ;;
symmetric) random="--random" ;;
*) echo "router.sh: NAT must be cone or symmetric, not $NAT" >&2; exit 1 ;;
esac

iptables -t nat -A POSTROUTING -o "$wan" -j MASQUERADE $random
iptables -A INPUT -i "$wan" -m conntrack --ctstate NEW,INVALID -j DROP
echo "router.sh: ${NAT:-cone} NAT from $lan ($LAN_NET) to $wan ($WAN_NET)"

trap 'exit 0' TERM INT
sleep infinity &
wait $!
