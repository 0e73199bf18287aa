#!/usr/bin/env python3
"""Generates pickle fixtures shaped like SkyPilot's CloudVmRayResourceHandle.

SkyPilot is not installable here (no PyPI), so this script defines stand-in
classes with the same module paths, class names and attribute names as
SkyPilot 0.12-0.14 (sky/backends/cloud_vm_ray_backend.py, sky/resources.py,
sky/clouds/aws.py, sky/provision/common.py) and registers them in
sys.modules, so that pickle records exactly the globals a real API server
would emit.  Only the standard library is used.

Usage:
    python3 gen_fixtures.py            # (re)write the fixtures next to this file
    python3 gen_fixtures.py load       # read base64 pickles (one per line) on
                                       # stdin, print a JSON summary per line
"""
import base64
import dataclasses
import enum
import json
import os
import pickle
import sys
import types
from typing import Any, Dict, List, Optional


def _module(name: str) -> types.ModuleType:
    """Creates (or returns) a module and its parents in sys.modules."""
    parts = name.split('.')
    for i in range(1, len(parts) + 1):
        sub = '.'.join(parts[:i])
        if sub not in sys.modules:
            sys.modules[sub] = types.ModuleType(sub)
            if i > 1:
                setattr(sys.modules['.'.join(parts[:i - 1])], parts[i - 1],
                        sys.modules[sub])
    return sys.modules[name]


def _register(cls, module: str):
    cls.__module__ = module
    cls.__qualname__ = cls.__name__
    setattr(_module(module), cls.__name__, cls)
    return cls


class AWS:
    """sky.clouds.aws.AWS: a stateless cloud object (empty __dict__)."""
    _REPR = 'AWS'


class GCP:
    """sky.clouds.gcp.GCP."""


class DiskTier(enum.Enum):
    """sky.utils.resources_utils.DiskTier (an enum: pickled via REDUCE)."""
    LOW = 'low'
    MEDIUM = 'medium'
    HIGH = 'high'
    ULTRA = 'ultra'
    BEST = 'best'


class Resources:
    """sky.resources.Resources (private attributes, _VERSION'd)."""
    _VERSION = 27

    def __init__(self, cloud, instance_type, region, zone=None,
                 accelerators=None, use_spot=False, disk_size=256,
                 image_id=None, ports=None, cpus=None, memory=None):
        self._version = self._VERSION
        self._cloud = cloud
        self._region = region
        self._zone = zone
        self._instance_type = instance_type
        self._use_spot_specified = use_spot
        self._use_spot = use_spot
        self._job_recovery = None
        self._disk_size = disk_size
        self._image_id = image_id
        self._is_image_managed = None
        self._disk_tier = DiskTier.MEDIUM
        self._network_tier = None
        self._ports = ports
        self._labels = None
        self._docker_login_config = None
        self._docker_username_for_runpod = None
        self._requires_fuse = None
        self._cluster_config_overrides = None
        self._cpus = cpus
        self._memory = memory
        self._accelerators = accelerators
        self._accelerator_args = None
        self._autostop_config = None
        self._priority = None


@dataclasses.dataclass
class InstanceInfo:
    """sky.provision.common.InstanceInfo."""
    instance_id: str
    internal_ip: str
    external_ip: Optional[str]
    tags: Dict[str, str]
    ssh_port: int = 22


@dataclasses.dataclass
class ClusterInfo:
    """sky.provision.common.ClusterInfo."""
    instances: Dict[str, List[InstanceInfo]]
    head_instance_id: Optional[str]
    provider_name: str
    provider_config: Optional[Dict[str, Any]] = None
    docker_user: Optional[str] = None
    ssh_user: Optional[str] = None
    custom_ray_options: Optional[Dict[str, Any]] = None


class CloudVmRayResourceHandle:
    """sky.backends.cloud_vm_ray_backend.CloudVmRayResourceHandle."""
    _VERSION = 12

    def __init__(self, *, cluster_name, cluster_name_on_cloud, cluster_yaml,
                 launched_nodes, launched_resources,
                 stable_internal_external_ips=None, stable_ssh_ports=None,
                 cluster_info=None):
        self._version = self._VERSION
        self.cluster_name = cluster_name
        self.cluster_name_on_cloud = cluster_name_on_cloud
        self._cluster_yaml = cluster_yaml
        self.stable_internal_external_ips = stable_internal_external_ips
        self.stable_ssh_ports = stable_ssh_ports
        self.cached_cluster_info = cluster_info
        self.launched_nodes = launched_nodes
        self.launched_resources = launched_resources
        self.docker_user = None
        self.is_grpc_enabled = True

    @property
    def ssh_user(self):
        if self.cached_cluster_info is not None:
            return self.cached_cluster_info.ssh_user
        return None

    def __getstate__(self):
        state = self.__dict__.copy()
        state.setdefault('skylet_ssh_tunnel', None)
        return state

    def __setstate__(self, state):
        state.pop('skylet_ssh_tunnel', None)
        self.__dict__.update(state)


_register(AWS, 'sky.clouds.aws')
_register(GCP, 'sky.clouds.gcp')
_register(DiskTier, 'sky.utils.resources_utils')
_register(Resources, 'sky.resources')
_register(InstanceInfo, 'sky.provision.common')
_register(ClusterInfo, 'sky.provision.common')
_register(CloudVmRayResourceHandle, 'sky.backends.cloud_vm_ray_backend')


def make_handle(name: str, cloud, region: str, nodes, ssh_user='ubuntu',
                docker_user=None, instance_type='m5.xlarge',
                accelerators=None):
    """nodes: list of (instance_id, internal_ip, external_ip, ssh_port)."""
    instances = {
        iid: [InstanceInfo(instance_id=iid, internal_ip=internal,
                           external_ip=external,
                           tags={'ray-cluster-name': name + '-2ea4', 'ray-node-type': 'head' if i == 0 else 'worker'},
                           ssh_port=port)]
        for i, (iid, internal, external, port) in enumerate(nodes)
    }
    info = ClusterInfo(instances=instances, head_instance_id=nodes[0][0],
                       provider_name=type(cloud).__name__.lower(),
                       provider_config={'region': region,
                                        'use_internal_ips': False},
                       docker_user=docker_user, ssh_user=ssh_user)
    pairs = [(n[1], n[2]) for n in nodes]
    ports = [n[3] for n in nodes]
    # Head first, workers sorted by external IP string, as SkyPilot does.
    order = [0] + sorted(range(1, len(nodes)), key=lambda i: pairs[i][1])
    handle = CloudVmRayResourceHandle(
        cluster_name=name,
        cluster_name_on_cloud=name + '-2ea4',
        cluster_yaml='~/.sky/generated/' + name + '.yml',
        launched_nodes=len(nodes),
        launched_resources=Resources(cloud, instance_type, region,
                                     zone=region + 'a',
                                     accelerators=accelerators,
                                     ports=['8080']),
        stable_internal_external_ips=[pairs[i] for i in order],
        stable_ssh_ports=[ports[i] for i in order],
        cluster_info=info)
    handle.docker_user = docker_user
    return handle


def summary(obj) -> Any:
    """What the Go tests compare the decoder's output with."""
    if obj is None:
        return None
    res = obj.launched_resources
    return {
        'cluster_name': obj.cluster_name,
        'cluster_name_on_cloud': obj.cluster_name_on_cloud,
        'version': obj._version,
        'launched_nodes': obj.launched_nodes,
        'stable_internal_external_ips': [list(p) for p in obj.stable_internal_external_ips],
        'stable_ssh_ports': obj.stable_ssh_ports,
        'ssh_user': obj.ssh_user,
        'docker_user': obj.docker_user,
        'cloud': type(res._cloud).__module__ + '.' + type(res._cloud).__name__,
        'region': res._region,
        'instance_type': res._instance_type,
        'head_instance_id': obj.cached_cluster_info.head_instance_id,
    }


FIXTURES = {
    'handle_2node': lambda: make_handle(
        'rh-train', AWS(), 'us-east-1',
        [('i-0aaa', '10.0.0.5', '3.90.1.10', 22),
         ('i-0bbb', '10.0.0.7', '3.90.1.9', 2222),
         ('i-0ccc', '10.0.0.6', '3.90.1.11', 22)]),
    'handle_1node_docker': lambda: make_handle(
        'solo', GCP(), 'us-central1', [('solo-head', '10.128.0.2', '34.1.2.3', 10022)],
        ssh_user='gcpuser', docker_user='root', instance_type='a2-highgpu-1g',
        accelerators={'A100': 1}),
}


def generate(out_dir: str) -> None:
    for name, make in FIXTURES.items():
        obj = make()
        with open(os.path.join(out_dir, name + '.json'), 'w') as f:
            json.dump(summary(obj), f, indent=2, sort_keys=True)
            f.write('\n')
        for proto in (2, 4, 5):
            data = pickle.dumps(obj, protocol=proto)
            base = os.path.join(out_dir, f'{name}_p{proto}')
            with open(base + '.pkl', 'wb') as f:
                f.write(data)
            with open(base + '.b64', 'w') as f:
                f.write(base64.b64encode(data).decode() + '\n')
    with open(os.path.join(out_dir, 'none.b64'), 'w') as f:
        f.write(base64.b64encode(pickle.dumps(None)).decode() + '\n')


def load() -> None:
    for line in sys.stdin:
        line = line.strip()
        if line:
            print(json.dumps(summary(pickle.loads(base64.b64decode(line))), sort_keys=True))


if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] == 'load':
        load()
    else:
        generate(os.path.dirname(os.path.abspath(__file__)))
