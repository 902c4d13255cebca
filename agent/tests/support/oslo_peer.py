"""A stand-in for neutron-server built on the real oslo.messaging library.

It serves the q-plugin and q-reports-plugin topics from networks given on
the command line, records every call, and casts notifications to the agent
when told to on standard input. Usage: oslo_peer.py <transport_url>
[oslo.config arguments, e.g. --config-file peer.conf]. Protocol on stdout:
"READY", then one "CALL <json>" line per call received. Commands on stdin,
one JSON per line:
  {"cast": "<method>", "host": "<agent host>", "payload": {...}}
  {"fanout": "<method>", "payload": {...}}
  {"set_network": {...network dict...}}
  {"raw": {"routing_key": "...", "body_b64": "..."}}   an AMQP body published as is
  {"delete_network": "<id>"}
  {"serve_agent": "<host>"}  play neutron-dhcp-agent on that host: an RPC server
                             on dhcp_agent, which declares its queues
  {"stop_agent": "<host>"}   stop it, as when that agent is stopped
"""
import base64
import json
import sys
import threading

import oslo_messaging
from oslo_config import cfg


class NetworkNotFound(Exception):
    """Named like neutron-lib's exception: the agent classifies by class name."""


NETWORKS = {}
LOCK = threading.Lock()


def emit(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def record(method, **kwargs):
    emit("CALL " + json.dumps({"method": method, "args": kwargs}))


class DhcpRpc:
    target = oslo_messaging.Target(version="1.10")

    def get_active_networks_info(self, context, **kw):
        record("get_active_networks_info", **kw)
        with LOCK:
            return list(NETWORKS.values())

    def get_network_info(self, context, **kw):
        record("get_network_info", **kw)
        with LOCK:
            net = NETWORKS.get(kw["network_id"])
        if net is None and kw["network_id"].startswith("missing"):
            raise NetworkNotFound("Network %s could not be found." % kw["network_id"])
        return net

    def create_dhcp_port(self, context, **kw):
        record("create_dhcp_port", **kw)
        port = dict(kw["port"]["port"])
        net_id = port.get("network_id", "")
        # One DHCP port per network, kept in the network as the server does.
        port.update({"id": "dhcp-" + net_id[:8] + "-" + net_id[-12:], "mac_address": "fa:16:3e:00:00:99", "device_owner": "network:dhcp",
                     "fixed_ips": [{"subnet_id": f["subnet_id"], "ip_address": "198.51.100.2"} for f in port.get("fixed_ips", [])]})
        with LOCK:
            net = NETWORKS.get(net_id)
            if net is not None:
                net["ports"] = [p for p in net.get("ports", []) if p.get("id") != port["id"]] + [port]
        return port

    def update_dhcp_port(self, context, **kw):
        record("update_dhcp_port", **kw)
        return None

    def release_dhcp_port(self, context, **kw):
        record("release_dhcp_port", **kw)

    def get_dhcp_port(self, context, **kw):
        record("get_dhcp_port", **kw)
        return None

    def dhcp_ready_on_ports(self, context, **kw):
        record("dhcp_ready_on_ports", **kw)


class Reports:
    target = oslo_messaging.Target(version="1.4")

    def __init__(self):
        self.seen = set()

    def report_state(self, context, **kw):
        record("report_state", **kw)
        host = kw["agent_state"]["agent_state"]["host"]
        first = host not in self.seen
        self.seen.add(host)
        return "new" if first else "alive"


class OldDhcpAgent:
    """The queues are what matters; a notification that reaches it is recorded."""
    target = oslo_messaging.Target(version="1.0")

    def __getattr__(self, name):
        if name.endswith("_end") or name == "agent_updated":
            return lambda context, **kw: record("agent:" + name, **kw)
        raise AttributeError(name)


def publish_raw(url, raw):
    """Publishes bytes to the control exchange, bypassing oslo's envelope."""
    import kombu
    with kombu.Connection(url.replace("rabbit://", "amqp://", 1)) as conn:
        exchange = kombu.Exchange("neutron", type="topic", durable=False)
        producer = conn.Producer(exchange=exchange, auto_declare=False)
        producer.publish(base64.b64decode(raw["body_b64"]), routing_key=raw["routing_key"],
                         content_type="application/json", content_encoding="utf-8")


def main():
    url = sys.argv[1]
    oslo_messaging.set_transport_defaults(control_exchange="neutron")
    conf = cfg.CONF  # oslo.messaging registers some options on the global config only
    conf(sys.argv[2:], project="peer")
    transport = oslo_messaging.get_rpc_transport(conf, url=url)
    servers = [
        oslo_messaging.get_rpc_server(transport, oslo_messaging.Target(topic="q-plugin", server="peer"), [DhcpRpc()], ),
        oslo_messaging.get_rpc_server(transport, oslo_messaging.Target(topic="q-reports-plugin", server="peer"), [Reports()], ),
    ]
    for s in servers:
        s.start()
    client = oslo_messaging.get_rpc_client(transport, oslo_messaging.Target(topic="dhcp_agent", version="1.0"))
    agents = {}
    emit("READY")
    for line in sys.stdin:
        cmd = json.loads(line)
        if "set_network" in cmd:
            with LOCK:
                NETWORKS[cmd["set_network"]["id"]] = cmd["set_network"]
        elif "cast" in cmd:
            client.prepare(server=cmd["host"]).cast({}, cmd["cast"], payload=cmd["payload"])
        elif "delete_network" in cmd:
            with LOCK:
                NETWORKS.pop(cmd["delete_network"], None)
        elif "raw" in cmd:
            publish_raw(url, cmd["raw"])
        elif "serve_agent" in cmd:
            agent = oslo_messaging.get_rpc_server(
                transport, oslo_messaging.Target(topic="dhcp_agent", server=cmd["serve_agent"]),
                [OldDhcpAgent()])
            agent.start()
            agents[cmd["serve_agent"]] = agent
        elif "stop_agent" in cmd:
            agent = agents.pop(cmd["stop_agent"])
            agent.stop()
            agent.wait()
        elif "fanout" in cmd:
            client.prepare(fanout=True).cast({}, cmd["fanout"], payload=cmd["payload"])
        emit("DONE")
    for s in servers + list(agents.values()):
        s.stop()
        s.wait()


if __name__ == "__main__":
    main()
