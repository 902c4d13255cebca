"""Reports an Open vSwitch L2 agent for a host, so neutron-server schedules
networks to that host's DHCP agent (it needs a live L2 agent there).
Usage: fake_ovs_agent.py <transport_url> <host>; reports every 10 s until killed."""
import sys
import time
import uuid
import datetime

import oslo_messaging
from oslo_config import cfg


def main():
    url, host = sys.argv[1], sys.argv[2]
    oslo_messaging.set_transport_defaults(control_exchange="neutron")
    cfg.CONF([], project="fake-ovs-agent")
    transport = oslo_messaging.get_rpc_transport(cfg.CONF, url=url)
    client = oslo_messaging.get_rpc_client(transport, oslo_messaging.Target(topic="q-reports-plugin", version="1.4"), timeout=10)
    state = {
        "binary": "neutron-openvswitch-agent",
        "host": host,
        "topic": "N/A",
        "agent_type": "Open vSwitch agent",
        "configurations": {"bridge_mappings": {}, "tunnel_types": ["vxlan"], "tunneling_ip": "127.0.0.1",
                           "devices": 0, "l2_population": False, "arp_responder_enabled": False},
        "start_flag": True,
    }
    while True:
        state["uuid"] = str(uuid.uuid4())
        try:
            client.call({}, "report_state", agent_state={"agent_state": state},
                        time=datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%S.%f"))
            state.pop("start_flag", None)
            sys.stdout.write("REPORTED\n")
            sys.stdout.flush()
        except Exception as e:  # keep reporting while the server starts
            sys.stderr.write("report failed: %s\n" % e)
        time.sleep(10)


if __name__ == "__main__":
    main()
