"""Reference render timing: neutron's own Dnsmasq driver (the pinned venv)
writes host, addn_hosts and opts for each network of a JSON file, set up the
way neutron's unit tests set it up (DeviceManager and the interface-address
probe mocked, files really written under a temporary dhcp_confs).

usage: python render_ref.py <networks.json> <rounds> <confs_dir>
prints one JSON line: {"wall": [seconds per round...], "cpu": [...],
"parse": [CPU seconds of json.loads + NetModel per round], "bytes": n}
"""
import json
import os
import sys
import time
from unittest import mock

from oslo_config import cfg

from neutron.agent.linux import dhcp
from neutron.conf.agent import common as config
from neutron.conf.agent import dhcp as dhcp_config
from neutron.conf import common as base_config


def make_conf(confs_dir):
    conf = config.setup_conf()
    conf.register_opts(base_config.core_opts)
    conf.register_opts(dhcp_config.DHCP_OPTS)
    conf.register_opts(dhcp_config.DNSMASQ_OPTS)
    conf.register_opts(config.DHCP_PROTOCOL_OPTS)
    config.register_external_process_opts(conf)
    config.register_interface_driver_opts_helper(conf)
    conf.register_opt(cfg.BoolOpt('enable_isolated_metadata', default=True))
    conf.register_opt(cfg.BoolOpt('force_metadata', default=False))
    conf.register_opt(cfg.BoolOpt('enable_metadata_network', default=False))
    conf([])
    conf.set_override('dhcp_confs', confs_dir)
    return conf


def main():
    path, rounds, confs_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open(path, 'rb') as f:
        raw = f.read()
    conf = make_conf(confs_dir)
    # The probes the driver would run against dnsmasq and the namespace.
    dhcp.Dnsmasq._IS_HOST_TAG_SUPPORTED = True
    patches = [
        mock.patch('neutron.agent.linux.dhcp.DeviceManager'),
        mock.patch.object(dhcp.Dnsmasq, '_make_subnet_interface_ip_map',
                          return_value={}),
        mock.patch.object(dhcp.Dnsmasq, 'interface_name', 'tap0'),
    ]
    for p in patches:
        p.start()
    walls, cpus, parse, total = [], [], [], 0
    for _ in range(rounds):
        w0, c0 = time.perf_counter(), time.process_time()
        models = [dhcp.NetModel(n) for n in json.loads(raw)]
        parse.append(time.process_time() - c0)
        for m in models:
            dm = dhcp.Dnsmasq(conf, m, process_monitor=mock.Mock())
            dm._output_hosts_file()
            dm._output_addn_hosts_file()
            dm._output_opts_file()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    for root, _, files in os.walk(confs_dir):
        for name in files:
            if name in ('host', 'addn_hosts', 'opts'):
                total += os.path.getsize(os.path.join(root, name))
    print(json.dumps({"wall": walls, "cpu": cpus, "parse": parse, "bytes": total}))


if __name__ == '__main__':
    main()
