"""Every option a neutron-dhcp-agent process registers, as JSON on stdout.

Run with the Python of the pinned neutron venv. It registers what
neutron-dhcp-agent's main() registers, then imports the modules the running
agent loads (the DHCP agent, the interface drivers, the service, OVSDB) and
makes an RPC client on a rabbit:// transport, as the agent does at start; each
of those registers more options. Nothing connects anywhere.

Used by agent/tests/docs.rs to hold docs/configuration.md to Neutron's names,
defaults and bounds.
"""

import importlib
import json
import os
import socket
import sys

from oslo_config import cfg


def registered(conf):
    """(group, name) -> Opt for every registered option (DEFAULT is 'DEFAULT')."""
    out = {}
    # oslo.config keeps its registry in private attributes; this is a test helper.
    for name, info in conf._opts.items():
        out[("DEFAULT", name)] = info["opt"]
    for gname, group in conf._groups.items():
        for name, info in group._opts.items():
            out[(gname, name)] = info["opt"]
    return out


def as_json(value, opt):
    """An option's default as plain JSON; computed defaults are named, not shown."""
    if isinstance(value, str):
        if value == socket.gethostname():
            return {"computed": "hostname"}
        if value == os.path.basename(sys.argv[0]):
            return {"computed": "program name"}
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [as_json(v, opt) for v in value]
    if isinstance(value, dict):
        return {str(k): as_json(v, opt) for k, v in value.items()}
    return str(value)


def main():
    conf = cfg.CONF
    steps = [
        ("dhcp-agent main", lambda: importlib.import_module(
            "neutron.agent.dhcp_agent").register_options(conf)),
        ("agent modules", lambda: [importlib.import_module(m) for m in (
            "neutron.agent.dhcp.agent",
            "neutron.agent.linux.dhcp",
            "neutron.agent.linux.interface",
            "neutron.agent.linux.external_process",
            "neutron.agent.common.ovs_lib",
            "neutron.service",
        )]),
        ("oslo.log", lambda: importlib.import_module(
            "oslo_log.log").register_options(conf)),
        ("rpc", rpc),
    ]
    seen = {}
    out = []
    for step, register in steps:
        try:
            register()
        except cfg.DuplicateOptError:
            pass
        for key, opt in sorted(registered(conf).items()):
            if key in seen:
                continue
            seen[key] = step
            kind = opt.type
            out.append({
                "group": key[0],
                "name": key[1],
                "step": step,
                "type": type(kind).__name__ if kind is not None else None,
                "default": as_json(opt.default, opt),
                "min": getattr(kind, "min", None),
                "max": getattr(kind, "max", None),
                "choices": [c[0] if isinstance(c, tuple) else c
                            for c in (getattr(kind, "choices", None) or [])],
                "deprecated_for_removal": bool(opt.deprecated_for_removal),
                "deprecated_names": sorted({
                    d.name.replace("-", "_") for d in opt.deprecated_opts
                    if d.name and d.group in (None, key[0])
                    and d.name.replace("-", "_") != key[1]}),
            })
    json.dump(out, sys.stdout, indent=1, sort_keys=True)


def rpc():
    """What the agent's start does for messaging: transport and an RPC client."""
    import oslo_messaging
    from neutron_lib import rpc as n_rpc
    oslo_messaging.set_transport_defaults(control_exchange="neutron")
    n_rpc.init(cfg.CONF)
    oslo_messaging.get_rpc_client(n_rpc.TRANSPORT,
                                  oslo_messaging.Target(topic="q-plugin"))


if __name__ == "__main__":
    main()
