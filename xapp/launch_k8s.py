"""``KubernetesJobLauncher``: the job as a batch/v1 Job in the xApp's namespace.

The Job runs the distill image with ``kdran job run --spec <path>``; the artifact store is a PVC
mounted at the same path in the xApp and the Job, so the spec, the recent CSI and the artifact
are shared files. The Job carries ``activeDeadlineSeconds``, ``backoffLimit``,
``ttlSecondsAfterFinished``, an optional GPU request (``nvidia.com/gpu``) and labels linking it
to the trigger (``kdran.io/job-id``, ``kdran.io/group``, ``kdran.io/trigger``). The launcher
watches the Job (``list_namespaced_job`` with ``watch``) until its ``Complete`` or ``Failed``
condition, then reads the pod's log (phase lines; kept as the failure report) and ``result.json``.

RBAC needed: ``batch/jobs`` create/get/list/watch/delete and ``pods``, ``pods/log`` get/list.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from xapp.config import ArtifactStoreConfig, JobsConfig, ModelSigningConfig
from xapp.jobs import JobResult, JobSpec, PhaseCallback, parse_phase, read_result

log = logging.getLogger("kdran.xapp.k8s")

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
SIGNING_MOUNT = "/var/run/kdran/signing"
CONTAINER = "distill"
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9._-]")
_WATCH_CHUNK_S = 60


def label_value(text: str) -> str:
    """``text`` as a valid label value: allowed characters only, at most 63, alphanumeric ends."""
    cleaned = _LABEL_VALUE.sub("-", text)[:63].strip("-._")
    return cleaned or "none"


def job_name(job_id: str) -> str:
    """The Job's name for ``job_id`` (a DNS-1123 label)."""
    name = re.sub(r"[^a-z0-9-]", "-", f"kdran-distill-{job_id}".lower())[:63]
    return name.strip("-")


def own_namespace(configured: str) -> str:
    """``configured``, else the pod's service-account namespace, else ``default``."""
    if configured:
        return configured
    if SERVICE_ACCOUNT_NAMESPACE.exists():
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    return "default"


def build_job(spec_path: Path, spec: JobSpec, labels: dict[str, str], jobs: JobsConfig,
              store: ArtifactStoreConfig, signing: ModelSigningConfig,
              namespace: str) -> client.V1Job:
    """The batch/v1 Job manifest for ``spec`` (see the module docstring)."""
    all_labels = {"app.kubernetes.io/name": "kdran-distill", "app.kubernetes.io/part-of": "kdran",
                  "kdran.io/job-id": label_value(spec.job_id),
                  **{f"kdran.io/{k}": label_value(v) for k, v in labels.items()}}
    resources = {kind: dict(values) for kind, values in jobs.resources.items()}
    if jobs.gpu_count > 0:
        for kind in ("requests", "limits"):  # extended resources need equal request and limit
            resources.setdefault(kind, {})[jobs.gpu_resource_name] = str(jobs.gpu_count)
    mounts = [client.V1VolumeMount(name="artifacts", mount_path=store.path)]
    volumes = [client.V1Volume(name="artifacts", persistent_volume_claim=(
        client.V1PersistentVolumeClaimVolumeSource(claim_name=store.pvc_claim_name)
        if store.pvc_claim_name else None), empty_dir=None if store.pvc_claim_name else
        client.V1EmptyDirVolumeSource())]
    env = [client.V1EnvVar(name="KDRAN_JOB_ID", value=spec.job_id)]
    if signing.job_secret_name:
        mounts.append(client.V1VolumeMount(name="signing", mount_path=SIGNING_MOUNT,
                                           read_only=True))
        volumes.append(client.V1Volume(name="signing", secret=client.V1SecretVolumeSource(
            secret_name=signing.job_secret_name)))
        env.append(client.V1EnvVar(name="KDRAN_SIGNING_KEY",
                                   value=f"{SIGNING_MOUNT}/{signing.job_secret_key}"))
    container = client.V1Container(
        name=CONTAINER, image=jobs.image, image_pull_policy=jobs.image_pull_policy,
        command=[*jobs.command, "--spec", str(spec_path)], env=env,
        resources=client.V1ResourceRequirements(requests=resources.get("requests"),
                                                limits=resources.get("limits"))
        if resources else None,
        volume_mounts=mounts)
    pod = client.V1PodSpec(
        restart_policy="Never", containers=[container], volumes=volumes,
        service_account_name=jobs.service_account or None,
        node_selector=dict(jobs.node_selector) or None,
        tolerations=[client.V1Toleration(**_snake(t)) for t in jobs.tolerations] or None)
    return client.V1Job(
        api_version="batch/v1", kind="Job",
        metadata=client.V1ObjectMeta(name=job_name(spec.job_id), namespace=namespace,
                                     labels=all_labels),
        spec=client.V1JobSpec(
            active_deadline_seconds=jobs.active_deadline_seconds,
            backoff_limit=jobs.backoff_limit,
            ttl_seconds_after_finished=jobs.ttl_seconds_after_finished,
            template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels=all_labels),
                                              spec=pod)))


def _snake(toleration: dict[str, Any]) -> dict[str, Any]:
    """A toleration written with Kubernetes' camelCase keys as client model kwargs."""
    mapping = {"tolerationSeconds": "toleration_seconds"}
    return {mapping.get(k, k): v for k, v in toleration.items()}


def manifest(job: client.V1Job) -> dict[str, Any]:
    """The Job as the JSON object the API server receives (camelCase keys, no nulls)."""
    result: dict[str, Any] = client.ApiClient().sanitize_for_serialization(job)
    return result


def _terminal(job: client.V1Job) -> tuple[bool, str]:
    """(finished, reason "" for success) from the Job's conditions."""
    for condition in (job.status.conditions or []) if job.status else []:
        if condition.status != "True":
            continue
        if condition.type == "Complete":
            return True, ""
        if condition.type == "Failed":
            return True, f"Job failed: {condition.reason or ''} {condition.message or ''}".strip()
    return False, ""


class KubernetesJobLauncher:
    """Creates and watches Jobs with the official client (``api_client`` for tests)."""

    def __init__(self, jobs: JobsConfig, store: ArtifactStoreConfig, signing: ModelSigningConfig,
                 api_client: client.ApiClient | None = None) -> None:
        self.jobs = jobs
        self.store = store
        self.signing = signing
        self.namespace = own_namespace(jobs.namespace)
        if api_client is None:
            from kubernetes import config as kube_config
            try:
                kube_config.load_incluster_config()
            except kube_config.ConfigException:
                kube_config.load_kube_config()
            api_client = client.ApiClient()
        self.batch = client.BatchV1Api(api_client)
        self.core = client.CoreV1Api(api_client)

    def run(self, spec: JobSpec, spec_path: Path, labels: dict[str, str],
            on_phase: PhaseCallback) -> JobResult:
        """Create the Job, watch it to completion (deadline plus a margin), read logs + result."""
        job = build_job(spec_path, spec, labels, self.jobs, self.store, self.signing,
                        self.namespace)
        name = job_name(spec.job_id)
        try:
            self.batch.create_namespaced_job(self.namespace, job)
        except ApiException as exc:
            return JobResult(spec.job_id, "failed",
                             f"cannot create Job {name}: {exc.status} {exc.reason}")
        log.info("job created", extra={"fields": {"job": name, "namespace": self.namespace}})
        failure = self._watch(name, self.jobs.active_deadline_seconds + _WATCH_CHUNK_S)
        logs = self._pod_logs(name)
        phases: dict[str, float] = {}
        for line in logs.splitlines():
            phase = parse_phase(line)
            if phase is not None and phase not in phases:
                phases[phase] = 0.0
                on_phase(phase)
        return read_result(spec, not failure, phases, logs, failure)

    def _watch(self, name: str, limit_s: float) -> str:
        """Wait for the Job's terminal condition; "" on success, else the failure reason."""
        deadline = time.monotonic() + limit_s
        selector = f"metadata.name={name}"
        while time.monotonic() < deadline:
            stream = watch.Watch()
            try:
                for event in stream.stream(self.batch.list_namespaced_job, self.namespace,
                                           field_selector=selector,
                                           timeout_seconds=_WATCH_CHUNK_S):
                    finished, reason = _terminal(event["object"])
                    if finished:
                        stream.stop()
                        return reason
                    if event["type"] == "DELETED":
                        stream.stop()
                        return f"Job {name} was deleted"
            except ApiException as exc:
                log.warning("job watch failed; retrying",
                            extra={"fields": {"job": name, "status": exc.status}})
                time.sleep(1.0)
        return f"Job {name} did not finish within {limit_s:g} s"

    def _pod_logs(self, name: str) -> str:
        """The log of the Job's newest pod ("" if none can be read)."""
        try:
            pods = self.core.list_namespaced_pod(self.namespace, label_selector=f"job-name={name}")
        except ApiException:
            return ""
        names = [(p.metadata.creation_timestamp, p.metadata.name) for p in pods.items
                 if p.metadata is not None and p.metadata.name]
        if not names:
            return ""
        newest = max(names, key=lambda item: item[0].timestamp() if item[0] else 0.0)[1]
        try:
            text: str = self.core.read_namespaced_pod_log(newest, self.namespace,
                                                          container=CONTAINER, tail_lines=2000)
        except ApiException:
            return ""
        return text

    def cancel(self, job_id: str) -> None:
        """Delete the Job and its pods (no-op when it does not exist)."""
        try:
            self.batch.delete_namespaced_job(job_name(job_id), self.namespace,
                                             propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise
