"""A small kubelet for the container tests: the chart's pods, as ``helm template`` renders them,
run in a real Docker Engine.

What it does, as the kubelet does (https://kubernetes.io/docs/concepts/workloads/pods/):

- one network namespace per pod (a "pause" container holds it; the pod's containers join it),
  on a fresh Docker network where each Service name (short and namespaced) is a network alias
  of the pods it selects, and each pod's name is its hostname;
- each container with its image, ``command``/``args`` (``$(VAR)`` expanded) and env exactly as
  rendered: ``value``, ``secretKeyRef``/``configMapKeyRef`` resolved from the rendered objects,
  ``fieldRef`` (name, namespace, uid, labels, annotations, pod IP, node) and
  ``resourceFieldRef`` filled in, ``envFrom`` taken in;
- init containers first, one at a time, in order, each until it exits 0 (retried with back-off);
- ``emptyDir`` volumes (a directory per pod, shared by its containers, mode 0777 as emptyDir's),
  Secret and ConfigMap volumes (their keys as files, ``items`` and ``defaultMode`` honoured,
  read-only), ``volumeClaimTemplates`` (a directory per pod), ``subPath`` mounts;
- the security context: ``runAsUser``/``runAsGroup``/``fsGroup``/``supplementalGroups``,
  ``runAsNonRoot`` checked, ``readOnlyRootFilesystem``, capabilities, no privilege escalation;
  the memory and CPU limits;
- startup, readiness and liveness probes (``httpGet``, ``tcpSocket``, ``exec``) with their
  delays, periods, timeouts and thresholds: a pod is ready when every container's readiness
  probe passes; a failed liveness probe restarts its container; a container that exits is
  restarted (``restartPolicy: Always``) with back-off;
- deleting a pod: ``preStop`` exec hooks, then the image's stop signal and, after
  ``terminationGracePeriodSeconds``, SIGKILL; the exit codes and the time it took are kept.

- with ``service_accounts`` (tests/support/service_account.py): ``KUBERNETES_SERVICE_HOST``/
  ``_PORT`` in every container, and each pod that mounts its service account's token
  (``automountServiceAccountToken``, true unless the pod says false) gets the projected
  ``token``, ``ca.crt`` and ``namespace`` at ``/var/run/secrets/kubernetes.io/serviceaccount``,
  rotated as the kubelet rotates it.

What it does not do, and says so: no API server of its own (nothing reads or writes Kubernetes
objects; the operator's pod gets the test's: kmock's emulator, behind a front that speaks
HTTPS and checks tokens), no scheduler or nodes, no kube-proxy (a
Service name resolves to its pods' addresses, so a Service port must equal its target port,
checked), no NetworkPolicy enforcement, no ``sizeLimit`` on ``emptyDir``, no image pulls
(third-party images are swapped for stand-ins given by the caller, and reported), and its
restart back-off is 1 s doubling to 8 s where the kubelet's is 10 s doubling to 5 minutes.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import yaml

from tests.support.service_account import MOUNT as SERVICE_ACCOUNT_MOUNT
from tests.support.service_account import ServiceAccounts

log = logging.getLogger("kubelet")

SERVICE_ACCOUNT_VOLUME = "kube-api-access"  # the projected volume's name in a real pod

NODE_NAME = "docker"
RESTART_BACKOFF_S = (1.0, 2.0, 4.0, 8.0)


class PodError(RuntimeError):
    """A pod could not be run as its spec says."""


# --- the rendered chart ---------------------------------------------------------------------


@dataclass
class Rendered:
    """The objects ``helm template`` rendered, with the lookups a kubelet needs."""

    objects: list[dict[str, Any]]

    @classmethod
    def from_helm(
        cls, helm: str, chart: Path, *, release: str, namespace: str, values: Iterable[Path]
    ) -> Rendered:
        command = [helm, "template", release, str(chart), "--namespace", namespace]
        for path in values:
            command += ["-f", str(path)]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        return cls([doc for doc in yaml.safe_load_all(out) if doc])

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o.get("kind") == kind]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        for obj in self.of_kind(kind):
            if obj["metadata"]["name"] == name:
                return obj
        raise PodError(f"the rendered chart has no {kind} {name!r}")

    def secret(self, name: str) -> dict[str, str]:
        obj = self.named("Secret", name)
        data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
        return {**data, **(obj.get("stringData") or {})}

    def config_map(self, name: str) -> dict[str, str]:
        return dict(self.named("ConfigMap", name).get("data") or {})

    def workloads(self) -> dict[str, dict[str, Any]]:
        """Deployments and StatefulSets by name."""
        return {
            o["metadata"]["name"]: o
            for o in self.objects
            if o.get("kind") in ("Deployment", "StatefulSet")
        }

    def hook_pods(self, hook: str = "test") -> list[dict[str, Any]]:
        return [
            o
            for o in self.of_kind("Pod")
            if hook in (o["metadata"].get("annotations") or {}).get("helm.sh/hook", "")
        ]

    def services_selecting(self, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        chosen = []
        for service in self.of_kind("Service"):
            selector = service["spec"].get("selector") or {}
            if selector and all(labels.get(k) == v for k, v in selector.items()):
                chosen.append(service)
        return chosen


# --- quantities, env, expansion --------------------------------------------------------------

_SUFFIXES = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "m": 1e-3, "": 1,
}  # fmt: skip


def quantity(text: str | int | float) -> float:
    """A Kubernetes quantity (``512Mi``, ``100m``, ``1.5``) as a number."""
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(text).strip())
    if not match or match.group(2) not in _SUFFIXES:
        raise PodError(f"not a quantity: {text!r}")
    return float(match.group(1)) * _SUFFIXES[match.group(2)]


_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: known names replaced, ``$$`` escapes, others kept."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _REFERENCE.sub(one, text)


# --- pods -------------------------------------------------------------------------------------


@dataclass
class ContainerState:
    name: str
    container: Any = None
    ready: bool = False
    started: bool = False  # the startup probe passed (or there is none)
    restarts: int = 0
    exit_codes: list[int] = field(default_factory=list)
    ready_after_s: float | None = None  # from the pod's creation to this container's first ready


@dataclass
class Pod:
    """One running pod: its containers, readiness and what its deletion took."""

    name: str
    workload: str
    spec: dict[str, Any]
    labels: dict[str, str]
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    ip: str = ""
    pause: Any = None
    folder: Path | None = None
    containers: dict[str, ContainerState] = field(default_factory=dict)
    init_runs: list[tuple[str, int]] = field(default_factory=list)
    init_logs: list[tuple[str, str]] = field(default_factory=list)  # each run's log
    deleting: bool = False
    deleted_in_s: float | None = None
    published: dict[int, int] = field(default_factory=dict)  # container port -> 127.0.0.1 port
    events: list[str] = field(default_factory=list)
    error: str = ""
    created: float = field(default_factory=time.monotonic)

    @property
    def ready(self) -> bool:
        return bool(self.containers) and all(c.ready for c in self.containers.values())

    def event(self, text: str) -> None:
        self.events.append(f"{time.strftime('%H:%M:%S')} {text}")
        log.info("%s: %s", self.name, text)


class Kubelet:
    """Runs the rendered chart's pods on a fresh Docker network (see the module docstring).

    Args:
        rendered: the chart as rendered.
        namespace: the release's namespace (for fieldRefs and namespaced Service names).
        substitutes: image -> stand-in image, for images that cannot be pulled here.
        env: workload name -> env entries added to its containers (the harness's own, e.g. the
            emulated API server's address for the operator); reported in :attr:`notes`.
        publish: Service name -> its port published on 127.0.0.1 (as a port-forward would).
        service_accounts: the API server and token the pods' service accounts get (None:
            no service-account volume and no ``KUBERNETES_SERVICE_*`` env).
    """

    def __init__(
        self,
        rendered: Rendered,
        *,
        namespace: str,
        substitutes: Mapping[str, str] | None = None,
        env: Mapping[str, Mapping[str, str]] | None = None,
        publish: Iterable[str] = (),
        service_accounts: ServiceAccounts | None = None,
    ) -> None:
        self.rendered = rendered
        self.service_accounts = service_accounts
        self.namespace = namespace
        self.substitutes = dict(substitutes or {})
        self.extra_env = {k: dict(v) for k, v in (env or {}).items()}
        self.publish = set(publish)
        self.docker = docker.from_env(timeout=120)
        self.run_id = uuid.uuid4().hex[:8]
        self.network = self.docker.networks.create(f"flotilla-pods-{self.run_id}", driver="bridge")
        self.folder = Path(tempfile.mkdtemp(prefix=f"flotilla-pods-{self.run_id}-"))
        self.folder.chmod(0o755)
        self.pods: dict[str, Pod] = {}
        self.notes: list[str] = [
            f"image {image} runs as the stand-in {standin}"
            for image, standin in self.substitutes.items()
        ]
        for workload, extra in self.extra_env.items():
            self.notes.append(f"{workload} gets env {sorted(extra)} from the harness")
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._watchers: list[threading.Thread] = []

    # -- the network ---------------------------------------------------------------------------

    @property
    def gateway(self) -> str:
        """The host's address on the pods' network (where the pods reach the test process)."""
        self.network.reload()
        return str(self.network.attrs["IPAM"]["Config"][0]["Gateway"])

    def _aliases(self, pod: Pod, workload: dict[str, Any]) -> list[str]:
        aliases = [pod.name]
        for service in self.rendered.services_selecting(pod.labels):
            name = service["metadata"]["name"]
            for port in service["spec"].get("ports") or []:
                target = self._container_port(pod.spec, port.get("targetPort", port["port"]))
                if target != port["port"]:
                    raise PodError(
                        f"Service {name} maps port {port['port']} to {target}: without "
                        "kube-proxy a Service port must equal its target port here"
                    )
            ns = self.namespace
            aliases += [name, f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"]
        governing = workload["spec"].get("serviceName")
        if workload["kind"] == "StatefulSet" and governing:
            aliases.append(f"{pod.name}.{governing}")
        return list(dict.fromkeys(aliases))

    @staticmethod
    def _container_port(spec: dict[str, Any], port: int | str) -> int:
        if isinstance(port, int):
            return port
        for container in spec["containers"]:
            for declared in container.get("ports") or []:
                if declared.get("name") == port:
                    return int(declared["containerPort"])
        raise PodError(f"no container port is named {port!r}")

    # -- env and volumes -------------------------------------------------------------------------

    def _field(self, pod: Pod, path: str) -> str:
        metadata = {"name": pod.name, "namespace": self.namespace, "uid": pod.uid}
        if path.startswith("metadata.labels["):
            return pod.labels.get(path.split("'")[1], "")
        if path.startswith("metadata.annotations["):
            return ""
        if path.startswith("metadata."):
            return metadata[path.split(".", 1)[1]]
        return {
            "spec.nodeName": NODE_NAME,
            "spec.serviceAccountName": pod.spec.get("serviceAccountName", "default"),
            "status.podIP": pod.ip,
            "status.podIPs": pod.ip,
            "status.hostIP": self.gateway,
        }[path]

    def _resource(self, container: dict[str, Any], ref: dict[str, Any]) -> str:
        kind, _, resource = ref["resource"].partition(".")
        value = (container.get("resources") or {}).get(kind, {}).get(resource)
        if value is None:
            return "0"
        divisor = quantity(ref.get("divisor", "1"))
        return str(int(-(-quantity(value) // divisor)))  # rounded up, as the kubelet does

    def _env(self, pod: Pod, container: dict[str, Any], workload: str) -> dict[str, str]:
        env: dict[str, str] = {"HOSTNAME": pod.name}
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if "secretRef" in source:
                values = self.rendered.secret(source["secretRef"]["name"])
            else:
                values = self.rendered.config_map(source["configMapRef"]["name"])
            env.update({prefix + k: v for k, v in values.items()})
        for entry in container.get("env") or []:
            if "value" in entry:
                env[entry["name"]] = expand(str(entry["value"]), env)
                continue
            ref = entry["valueFrom"]
            if "secretKeyRef" in ref:
                key = ref["secretKeyRef"]
                env[entry["name"]] = self.rendered.secret(key["name"])[key["key"]]
            elif "configMapKeyRef" in ref:
                key = ref["configMapKeyRef"]
                env[entry["name"]] = self.rendered.config_map(key["name"])[key["key"]]
            elif "fieldRef" in ref:
                env[entry["name"]] = self._field(pod, ref["fieldRef"]["fieldPath"])
            elif "resourceFieldRef" in ref:
                env[entry["name"]] = self._resource(container, ref["resourceFieldRef"])
            else:
                raise PodError(f"{pod.name}: env {entry['name']} has an unknown source {ref}")
        if self.service_accounts is not None:
            env.update(self.service_accounts.env())
        env.update(self.extra_env.get(workload, {}))
        return env

    def _volumes(self, pod: Pod, workload: dict[str, Any]) -> dict[str, tuple[Path, bool]]:
        """Each volume of the pod as a host folder (and whether it is read-only)."""
        assert pod.folder is not None
        security = pod.spec.get("securityContext") or {}
        group = security.get("fsGroup")
        volumes: dict[str, tuple[Path, bool]] = {}
        claims = [t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates") or []]
        for name in claims:
            volumes[name] = (self._writable(pod.folder / "claims" / name, group), False)
        for volume in pod.spec.get("volumes") or []:
            name = volume["name"]
            path = pod.folder / "volumes" / name
            if "emptyDir" in volume:
                volumes[name] = (self._writable(path, group), False)
            elif "secret" in volume or "configMap" in volume:
                source = volume.get("secret") or volume["configMap"]
                values = (
                    self.rendered.secret(source["secretName"])
                    if "secret" in volume
                    else self.rendered.config_map(source["name"])
                )
                items = source.get("items") or [{"key": k, "path": k} for k in values]
                path.mkdir(parents=True)
                path.chmod(0o755)
                for item in items:
                    file = path / item["path"]
                    file.parent.mkdir(parents=True, exist_ok=True)
                    file.write_text(values[item["key"]])
                    file.chmod(item.get("mode", source.get("defaultMode", 0o644)))
                    if group is not None:
                        shutil.chown(file, group=group)
                volumes[name] = (path, True)
            elif "persistentVolumeClaim" in volume:
                volumes[name] = (self._writable(path, group), False)
            else:
                raise PodError(f"{pod.name}: volume {name} is of a kind this kubelet lacks")
        if self.service_accounts is not None and pod.spec.get("automountServiceAccountToken", True):
            folder = pod.folder / "serviceaccount"
            volumes[SERVICE_ACCOUNT_VOLUME] = (
                self.service_accounts.project(folder, self.namespace),
                True,
            )
        return volumes

    @staticmethod
    def _writable(path: Path, group: int | None) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        if group is not None:
            shutil.chown(path, group=group)
            path.chmod(0o2777)  # NOTE: setgid, as the kubelet gives an fsGroup its volumes
        else:
            path.chmod(0o777)
        return path

    # -- containers ------------------------------------------------------------------------------

    def _image(self, image: str) -> str:
        return self.substitutes.get(image, image)

    def _create(
        self,
        pod: Pod,
        container: dict[str, Any],
        workload: dict[str, Any],
        volumes: dict[str, tuple[Path, bool]],
        role: str,
    ) -> Any:
        pod_security = pod.spec.get("securityContext") or {}
        security = {**pod_security, **(container.get("securityContext") or {})}
        user, group = security.get("runAsUser"), security.get("runAsGroup")
        image = self._image(container["image"])
        if security.get("runAsNonRoot"):
            configured = user
            if configured is None:
                configured = self.docker.images.get(image).attrs["Config"].get("User") or "0"
            if str(configured).split(":")[0] in ("0", "root", ""):
                raise PodError(f"{pod.name}/{container['name']}: runAsNonRoot, but it runs as root")
        env = self._env(pod, container, workload["metadata"]["name"])
        command = [expand(str(a), env) for a in container.get("command") or []]
        args = [expand(str(a), env) for a in container.get("args") or []]
        mounts = []
        if SERVICE_ACCOUNT_VOLUME in volumes:
            source, _ = volumes[SERVICE_ACCOUNT_VOLUME]
            mounts.append(
                docker.types.Mount(
                    target=SERVICE_ACCOUNT_MOUNT, source=str(source), type="bind", read_only=True
                )
            )
        for mount in container.get("volumeMounts") or []:
            source, read_only = volumes[mount["name"]]
            if mount.get("subPath"):
                source = source / mount["subPath"]
            mounts.append(
                docker.types.Mount(
                    target=mount["mountPath"],
                    source=str(source),
                    type="bind",
                    read_only=read_only or bool(mount.get("readOnly")),
                )
            )
        limits = (container.get("resources") or {}).get("limits") or {}
        capabilities = security.get("capabilities") or {}
        groups = [g for g in [pod_security.get("fsGroup")] if g is not None]
        groups += pod_security.get("supplementalGroups") or []
        options: dict[str, Any] = {
            "name": f"{pod.name}-{container['name']}-{role}-{uuid.uuid4().hex[:4]}",
            "environment": env,
            "network_mode": f"container:{pod.pause.id}",
            "mounts": mounts,
            "read_only": bool(security.get("readOnlyRootFilesystem")),
            "cap_drop": capabilities.get("drop") or None,
            "cap_add": capabilities.get("add") or None,
            "group_add": [str(g) for g in groups] or None,
            "labels": {"flotilla.pods": self.run_id, "pod": pod.name},
            "detach": True,
        }
        if security.get("allowPrivilegeEscalation") is False:
            options["security_opt"] = ["no-new-privileges"]
        if user is not None:
            options["user"] = f"{user}:{group}" if group is not None else str(user)
        if "memory" in limits:
            options["mem_limit"] = int(quantity(limits["memory"]))
        if "cpu" in limits:
            options["nano_cpus"] = int(quantity(limits["cpu"]) * 1e9)
        if command:
            # NOTE: `command` replaces the image's ENTRYPOINT and, without `args`, its CMD too.
            options["entrypoint"] = command[:1]
            options["command"] = command[1:] + args
        elif args:
            options["command"] = args
        return self.docker.containers.create(image, **options)

    # -- a pod's life ------------------------------------------------------------------------------

    def start(self, workload_name: str, ordinal: int = 0) -> Pod:
        """Create one pod of a Deployment, StatefulSet (or a bare Pod) and start it."""
        workload = self._workload(workload_name)
        template = workload["spec"]["template"] if workload["kind"] != "Pod" else workload
        labels = dict(template["metadata"].get("labels") or {})
        if workload["kind"] == "StatefulSet":
            name = f"{workload_name}-{ordinal}"
        elif workload["kind"] == "Deployment":
            digest = hashlib.sha256(repr(template).encode()).hexdigest()[:9]
            name = f"{workload_name}-{digest}-{uuid.uuid4().hex[:5]}"
        else:
            name = workload_name
        pod = Pod(name, workload_name, template["spec"], labels)
        pod.folder = self.folder / name
        with self._lock:
            self.pods[name] = pod
        try:
            self._run(pod, workload)
        except Exception as exc:
            pod.error = str(exc)
            pod.event(f"failed: {exc}")
            raise
        return pod

    def _workload(self, name: str) -> dict[str, Any]:
        workloads = self.rendered.workloads()
        if name in workloads:
            return workloads[name]
        for pod in self.rendered.of_kind("Pod"):
            if pod["metadata"]["name"] == name:
                return pod
        raise PodError(f"the rendered chart has no workload {name!r}")

    def _run(self, pod: Pod, workload: dict[str, Any]) -> None:
        first = pod.spec["containers"][0]
        security = pod.spec.get("securityContext") or {}
        ports = {}
        for service in self.rendered.services_selecting(pod.labels):
            if service["metadata"]["name"] in self.publish:
                for port in service["spec"]["ports"]:
                    ports[f"{port['port']}/tcp"] = ("127.0.0.1", None)
        # NOTE: the pause container holds the pod's network namespace and hostname.
        pod.pause = self.docker.containers.create(
            self._image(first["image"]),
            entrypoint=["sleep"],
            command=["infinity"],
            name=f"{pod.name}-pause-{self.run_id}",
            hostname=pod.name[:63],
            user=str(security.get("runAsUser", 65534)),
            read_only=True,
            cap_drop=["ALL"],
            network=self.network.name,
            ports=ports or None,
            labels={"flotilla.pods": self.run_id, "pod": pod.name},
            detach=True,
        )
        self.network.disconnect(pod.pause)
        self.network.connect(pod.pause, aliases=self._aliases(pod, workload))
        pod.pause.start()
        pod.pause.reload()
        pod.ip = pod.pause.attrs["NetworkSettings"]["Networks"][self.network.name]["IPAddress"]
        for key, bound in (pod.pause.attrs["NetworkSettings"]["Ports"] or {}).items():
            if bound:
                pod.published[int(key.split("/")[0])] = int(bound[0]["HostPort"])
        pod.event(f"sandbox up at {pod.ip}")
        volumes = self._volumes(pod, workload)
        restart = pod.spec.get("restartPolicy", "Always")
        for init in pod.spec.get("initContainers") or []:
            self._run_init(pod, init, workload, volumes, retry=restart != "Never")
        for spec in pod.spec["containers"]:
            state = ContainerState(spec["name"])
            state.container = self._create(pod, spec, workload, volumes, "main")
            state.container.start()
            state.started = "startupProbe" not in spec
            pod.containers[spec["name"]] = state
            pod.event(f"started {spec['name']}")
        watcher = threading.Thread(
            target=self._watch,
            args=(pod, workload, volumes),
            name=f"kubelet-{pod.name}",
            daemon=True,
        )
        watcher.start()
        self._watchers.append(watcher)

    def _run_init(
        self,
        pod: Pod,
        spec: dict[str, Any],
        workload: dict[str, Any],
        volumes: dict[str, tuple[Path, bool]],
        *,
        retry: bool,
        deadline_s: float = 180.0,
    ) -> None:
        deadline = time.monotonic() + deadline_s
        for attempt in range(10_000):
            container = self._create(pod, spec, workload, volumes, f"init{attempt}")
            container.start()
            code = int(container.wait()["StatusCode"])
            pod.init_runs.append((spec["name"], code))
            pod.init_logs.append((spec["name"], container.logs().decode(errors="replace")))
            if code == 0:
                pod.event(f"init container {spec['name']} done")
                container.remove()
                return
            tail = container.logs(tail=5).decode(errors="replace").strip()
            container.remove()
            pod.event(f"init container {spec['name']} exited {code}: {tail[-300:]}")
            if not retry or time.monotonic() > deadline or self._stop.is_set():
                raise PodError(f"{pod.name}: init container {spec['name']} exited {code}: {tail}")
            time.sleep(RESTART_BACKOFF_S[min(attempt, len(RESTART_BACKOFF_S) - 1)])

    # -- probes and restarts ---------------------------------------------------------------------

    def _probe(self, pod: Pod, state: ContainerState, probe: dict[str, Any]) -> bool:
        timeout = float(probe.get("timeoutSeconds", 1))
        try:
            if "httpGet" in probe:
                get = probe["httpGet"]
                port = self._container_port(pod.spec, get["port"])
                headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
                url = f"{get.get('scheme', 'HTTP').lower()}://{pod.ip}:{port}{get.get('path', '/')}"
                answer = httpx.get(url, headers=headers, timeout=timeout, verify=False)  # noqa: S501
                return 200 <= answer.status_code < 400
            if "tcpSocket" in probe:
                port = self._container_port(pod.spec, probe["tcpSocket"]["port"])
                with socket.create_connection((pod.ip, port), timeout=timeout):
                    return True
            if "exec" in probe:
                return self._exec(state.container, probe["exec"]["command"], timeout) == 0
        except (httpx.HTTPError, OSError, docker.errors.APIError):
            return False
        raise PodError(f"{pod.name}: a probe of a kind this kubelet lacks: {sorted(probe)}")

    def _exec(self, container: Any, command: list[str], timeout: float) -> int | None:
        """Run ``command`` in ``container``; its exit code, or None if it outlived ``timeout``."""
        result: list[int] = []

        def run() -> None:
            result.append(int(container.exec_run(command, demux=True).exit_code))

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(timeout)
        return result[0] if result else None

    def _watch(
        self, pod: Pod, workload: dict[str, Any], volumes: dict[str, tuple[Path, bool]]
    ) -> None:
        """Probe the pod's containers and restart those that exit or fail liveness."""
        specs = {c["name"]: c for c in pod.spec["containers"]}
        since = dict.fromkeys(specs, time.monotonic())
        due: dict[tuple[str, str], float] = {}
        counts: dict[tuple[str, str], tuple[int, int]] = {}
        while not self._stop.is_set() and not pod.deleting:
            now = time.monotonic()
            for name, spec in specs.items():
                state = pod.containers[name]
                if self._exited(pod, state, spec, workload, volumes):
                    since[name] = time.monotonic()
                    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                        due.pop((name, kind), None)
                        counts.pop((name, kind), None)
                    continue
                kinds = (
                    ["startupProbe"] if not state.started else ["readinessProbe", "livenessProbe"]
                )
                for kind in kinds:
                    probe = spec.get(kind)
                    if probe is None:
                        if kind == "readinessProbe" and not state.ready:
                            state.ready = True
                            state.ready_after_s = state.ready_after_s or now - pod.created
                        continue
                    key = (name, kind)
                    first = since[name] + float(probe.get("initialDelaySeconds", 0))
                    if now < due.get(key, first):
                        continue
                    due[key] = now + float(probe.get("periodSeconds", 10))
                    ok = self._probe(pod, state, probe)
                    good, bad = counts.get(key, (0, 0))
                    good, bad = (good + 1, 0) if ok else (0, bad + 1)
                    counts[key] = (good, bad)
                    if kind == "startupProbe":
                        if ok:
                            state.started = True
                        elif bad >= int(probe.get("failureThreshold", 3)):
                            pod.event(f"{name} failed its startup probe: restarting it")
                            self._restart(pod, state, spec)
                    elif kind == "readinessProbe":
                        if ok and good >= int(probe.get("successThreshold", 1)):
                            state.ready = True
                            if state.ready_after_s is None:
                                state.ready_after_s = time.monotonic() - pod.created
                        elif not ok and bad >= int(probe.get("failureThreshold", 3)):
                            state.ready = False
                    elif not ok and bad >= int(probe.get("failureThreshold", 3)):
                        pod.event(f"{name} failed its liveness probe: restarting it")
                        self._restart(pod, state, spec)
                        since[name] = time.monotonic()
                        counts.pop(key, None)
            time.sleep(0.25)

    def _exited(
        self,
        pod: Pod,
        state: ContainerState,
        spec: dict[str, Any],
        workload: dict[str, Any],
        volumes: dict[str, tuple[Path, bool]],
    ) -> bool:
        try:
            state.container.reload()
        except docker.errors.NotFound:
            return False
        if state.container.status not in ("exited", "dead") or pod.deleting:
            return False
        code = int(state.container.attrs["State"]["ExitCode"])
        state.exit_codes.append(code)
        state.ready = False
        if pod.spec.get("restartPolicy", "Always") == "Never" or (
            pod.spec.get("restartPolicy") == "OnFailure" and code == 0
        ):
            return False
        pause = RESTART_BACKOFF_S[min(state.restarts, len(RESTART_BACKOFF_S) - 1)]
        pod.event(f"{state.name} exited {code}: restarting it in {pause:.0f} s")
        time.sleep(pause)
        if not pod.deleting:
            state.restarts += 1
            state.started = "startupProbe" not in spec
            state.container.start()
        return True

    def _restart(self, pod: Pod, state: ContainerState, spec: dict[str, Any]) -> None:
        grace = int(pod.spec.get("terminationGracePeriodSeconds", 30))
        state.container.stop(timeout=grace)
        state.restarts += 1
        state.ready = False
        state.started = "startupProbe" not in spec
        state.container.start()

    # -- waiting, talking, deleting ------------------------------------------------------------

    def wait_ready(self, pods: Iterable[Pod], timeout_s: float = 180.0) -> None:
        pods = list(pods)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(p.ready for p in pods):
                return
            failed = [p for p in pods if p.error]
            if failed:
                raise PodError(f"pod {failed[0].name} failed: {failed[0].error}")
            time.sleep(0.25)
        waiting = [p.name for p in pods if not p.ready]
        raise PodError(f"not ready in {timeout_s:.0f} s: {waiting}\n{self.describe(waiting)}")

    def start_all(self, names: Iterable[str]) -> list[Pod]:
        """One pod of each workload (``replicas`` of a Deployment), all at once, as a cluster
        starts them: nothing waits for anything but the init containers do."""
        jobs = []
        for name in names:
            workload = self._workload(name)
            count = int(workload["spec"].get("replicas", 1)) if workload["kind"] != "Pod" else 1
            jobs += [(name, ordinal) for ordinal in range(count)]
        with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
            return list(pool.map(lambda job: self.start(*job), jobs))

    def pods_of(self, workload: str) -> list[Pod]:
        return [p for p in self.pods.values() if p.workload == workload and not p.deleting]

    def wait_exit(self, pod: Pod, timeout_s: float = 120.0) -> int:
        """A run-to-completion pod's (``restartPolicy: Never``) exit code."""
        (state,) = pod.containers.values()
        return int(state.container.wait(timeout=timeout_s)["StatusCode"])

    def logs(self, pod: Pod, container: str | None = None) -> str:
        state = pod.containers[container or next(iter(pod.containers))]
        return str(state.container.logs().decode(errors="replace"))

    def describe(self, names: Iterable[str] | None = None) -> str:
        """What ``kubectl describe`` and ``kubectl logs --tail`` would show of these pods."""
        lines = []
        for pod in self.pods.values():
            if names is not None and pod.name not in names:
                continue
            lines.append(f"pod {pod.name} ({pod.ip}) ready={pod.ready} error={pod.error!r}")
            lines += [f"  {event}" for event in pod.events[-8:]]
            for state in pod.containers.values():
                with contextlib.suppress(docker.errors.APIError):
                    tail = state.container.logs(tail=8).decode(errors="replace")
                    lines.append(f"  {state.name} restarts={state.restarts} log:\n{tail}")
        return "\n".join(lines)

    def delete(self, pod: Pod) -> dict[str, int]:
        """Delete a pod as the kubelet does: preStop hooks, the stop signal, SIGKILL after the
        grace period. Returns each container's exit code; ``pod.deleted_in_s`` the time."""
        pod.deleting = True
        grace = int(pod.spec.get("terminationGracePeriodSeconds", 30))
        started = time.monotonic()
        specs = {c["name"]: c for c in pod.spec["containers"]}

        def stop(state: ContainerState) -> int:
            hook = ((specs[state.name].get("lifecycle") or {}).get("preStop") or {}).get("exec")
            if hook:
                self._exec(state.container, hook["command"], grace)
            left = max(0.0, grace - (time.monotonic() - started))
            with contextlib.suppress(docker.errors.APIError):
                state.container.stop(timeout=int(left))
            state.container.reload()
            return int(state.container.attrs["State"]["ExitCode"])

        with ThreadPoolExecutor(max_workers=max(1, len(pod.containers))) as pool:
            codes = dict(zip(pod.containers, pool.map(stop, pod.containers.values()), strict=True))
        pod.deleted_in_s = time.monotonic() - started
        pod.event(f"deleted in {pod.deleted_in_s:.1f} s, exit codes {codes}")
        return codes

    def close(self) -> None:
        """Remove every container, the network and the pods' folders."""
        self._stop.set()
        for container in self.docker.containers.list(
            all=True, filters={"label": f"flotilla.pods={self.run_id}"}
        ):
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
        with contextlib.suppress(docker.errors.APIError):
            self.network.remove()
        shutil.rmtree(self.folder, ignore_errors=True)
        self.docker.close()


def eventually(check: Callable[[], Any], timeout_s: float = 60.0, every_s: float = 0.5) -> Any:
    """``check()``'s first true answer within ``timeout_s``; AssertionError otherwise."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, OSError):
            last = check()
            if last:
                return last
        time.sleep(every_s)
    raise AssertionError(f"not so within {timeout_s:.0f} s (last answer: {last!r})")
