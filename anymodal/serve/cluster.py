"""``anymodal serve --ray``: the same FastAPI application (:func:`~anymodal.serve.app.create_app`) as
the replicas of one Ray Serve deployment, behind Ray's HTTP proxy (see docs/serving-ray.md).

Each replica is a Ray actor that loads its own copy of the model, as the command loads it, from the
config source and ``--set`` overrides the command got (:class:`ReplicaModel`), builds the
application there and serves the whole API; Ray's proxy spreads the requests over the replicas
and starts a new replica when one dies. Every response names the replica that answered in its
``x-anymodal-replica`` header (:class:`ReplicaHeader`).

Queues: Ray sends a replica at most ``max_queue + max_batch`` requests at a time
(:func:`max_ongoing_requests`), exactly what the replica's own queue admits (``max_batch`` decoded
together, ``max_queue`` waiting), so a replica never turns away a request that Ray routed to it.
Requests that find every replica full wait at Ray's proxy, up to ``max_queue`` of them per proxy
(at least 1: Ray takes no 0); past those the proxy answers 429 with ``Retry-After`` (503 on Ray
versions before ``backpressure_config``).

Importing this module imports neither ray, FastAPI nor torch: :func:`application`, :func:`serving`
and :func:`serve_forever` import ray, and a replica the rest.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from anymodal.contract.errors import ModelLoadError, UsageError

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from anymodal.contract.registry import Registry
    from anymodal.runtime.chat import ChatSession
    from anymodal.serve.service import ServeOptions

#: The response header naming the replica that answered (Ray Serve's replica id).
REPLICA_HEADER = "x-anymodal-replica"
#: The Serve application's name, and its one deployment's.
APP_NAME = "anymodal"


@dataclass(frozen=True)
class ReplicaModel:
    """What every replica serves. ``load`` loads the model in the replica and returns the registry
    and the session: the command's own loading bound to the config source and overrides it got
    (a ``functools.partial`` of a module-level function, which Ray pickles by reference);
    ``options`` are the server's, the same for every replica."""

    load: Callable[[], tuple[Registry, ChatSession]]
    options: ServeOptions


@dataclass(frozen=True)
class ClusterOptions:
    """How the deployment runs: ``replicas`` copies of the model, each given ``cpus_per_replica``
    and ``gpus_per_replica`` of Ray's resources, behind Ray's proxy on ``host``:``port``."""

    replicas: int = 1
    cpus_per_replica: float = 1.0
    gpus_per_replica: float = 0.0
    host: str = "127.0.0.1"
    port: int = 8000

    @property
    def url(self) -> str:
        """The proxy's base URL (without ``/v1``)."""
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}"


def max_ongoing_requests(max_queue: int, max_batch: int = 1) -> int:
    """Requests Ray may send one replica at a time: the ``max_batch`` it decodes together and the
    ``max_queue`` it lets wait, what the replica's own queue admits. One more would be a 429 from a
    full replica while another may have room; one fewer would leave a place in its queue unused."""
    return max_queue + max_batch


def deployment_options(model: ReplicaModel, cluster: ClusterOptions) -> dict[str, Any]:
    """The keyword arguments of ``serve.deployment`` for ``cluster`` (see the module docstring)."""
    from anymodal.serve.worker import RETRY_AFTER_S

    actor: dict[str, Any] = {"num_cpus": cluster.cpus_per_replica}
    if cluster.gpus_per_replica > 0:
        actor["num_gpus"] = cluster.gpus_per_replica
    max_queue = model.options.max_queue
    settings: dict[str, Any] = {
        "name": APP_NAME,
        "num_replicas": cluster.replicas,
        "ray_actor_options": actor,
        "max_ongoing_requests": max_ongoing_requests(max_queue, model.options.max_batch),
        "max_queued_requests": max(1, max_queue),
    }
    with contextlib.suppress(ImportError):  # newer Ray: turned away as the server itself does it
        from ray.serve.config import BackpressureConfig

        settings["backpressure_config"] = BackpressureConfig(status_code=429, retry_after_s=RETRY_AFTER_S)
    return settings


def replica_app(model: ReplicaModel, replica: str, gpus: float = 0.0) -> ASGIApp:
    """The application one replica serves: ``model`` loaded here, every response marked with
    ``replica``. A replica given no GPU hides the machine's GPUs from torch: Ray no longer hides
    them from actors that asked for none, and ``model.device: auto`` would put every such replica
    on the first GPU, which Ray counts as free."""
    if gpus <= 0:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    from anymodal.serve.app import create_app

    registry, session = model.load()
    return ReplicaHeader(create_app(session, registry, model.options), replica)


class ReplicaHeader:
    """ASGI middleware that adds ``x-anymodal-replica: <replica>`` to every HTTP response."""

    def __init__(self, app: ASGIApp, replica: str) -> None:
        self.app = app
        self.header = (REPLICA_HEADER.encode(), replica.encode("latin-1"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan: the app's own start and shutdown
            await self.app(scope, receive, send)
            return

        async def marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        await self.app(scope, receive, marked)


def application(model: ReplicaModel, cluster: ClusterOptions) -> Any:
    """The Ray Serve application (a ``serve.Application``): one deployment of ``cluster.replicas``
    replicas, each running :func:`replica_app` when Ray starts it."""
    from ray import serve

    gpus = cluster.gpus_per_replica

    def build() -> ASGIApp:  # Ray runs this inside each replica as it starts
        return replica_app(model, serve.get_replica_context().replica_tag, gpus)

    deployment = serve.deployment(**deployment_options(model, cluster))(serve.ingress(build)())
    return deployment.bind()


@contextlib.contextmanager
def serving(model: ReplicaModel, cluster: ClusterOptions, keep_serve: bool = False) -> Iterator[str]:
    """Serve ``model`` on the Ray cluster this process is connected to (``ray.init`` first) for the
    ``with`` block, from when every replica is up; yields the base URL. On the way out Serve is
    shut down, or with ``keep_serve`` (a cluster others may use too) only this application deleted."""
    from ray import serve

    serve.start(http_options={"host": cluster.host, "port": cluster.port})
    try:
        try:
            serve.run(application(model, cluster), name=APP_NAME, route_prefix="/")
        except RuntimeError as error:  # the replicas failed to start (Ray tried a few times)
            raise ModelLoadError(
                f"the replicas did not start: {_replica_failure(serve, error)}",
                hint="the replicas' logs are under /tmp/ray/session_latest/logs/serve/ on their nodes",
            ) from None
        yield cluster.url
    finally:
        if keep_serve:
            with contextlib.suppress(Exception):  # gone already with the cluster: nothing to delete
                serve.delete(APP_NAME)
        else:
            serve.shutdown()


def _replica_failure(serve: Any, error: RuntimeError) -> str:
    """The last line of what the deployment reports (a replica's exception, as ``Type: message``),
    which Ray's own error leaves out; Ray's error when the report cannot be had."""
    report = ""
    with contextlib.suppress(Exception):  # the status is an extra: Ray's error is there regardless
        report = serve.status().applications[APP_NAME].deployments[APP_NAME].message
    lines = [line.strip() for line in (report or str(error)).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def serve_forever(
    model: ReplicaModel,
    cluster: ClusterOptions,
    address: str | None,
    announce: Callable[[str], None],
) -> None:
    """``anymodal serve --ray``: start a local Ray instance (no ``address``) or join the cluster at
    ``address`` (``auto``, ``HOST:PORT``, ``ray://HOST:10001``), serve until Ctrl-C or SIGTERM,
    then take the application down, with Serve and the local instance when this process started
    them. ``announce`` gets the base URL once every replica is up."""
    import ray

    try:
        ray.init(address=address or "local")
    except ConnectionError as error:
        raise UsageError(
            f"cannot join the Ray cluster at {address}: {error}",
            hint="start it with `ray start --head`, or leave out --ray-address for a local one",
        ) from None
    try:
        if address is None:
            _check_local_resources(cluster, ray.cluster_resources())
        with _stopped_by_sigterm(), serving(model, cluster, keep_serve=address is not None) as url:
            announce(url)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
    finally:
        ray.shutdown()


@contextlib.contextmanager
def _stopped_by_sigterm() -> Iterator[None]:
    """SIGTERM (``kill``, a service manager) stops serving as Ctrl-C does, so the cleanup runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _check_local_resources(cluster: ClusterOptions, resources: dict[str, float]) -> None:
    """A local instance does not grow: replicas it cannot place would leave ``serve.run`` waiting
    for ever, so say so before deploying."""
    for name, each, flag in (
        ("CPU", cluster.cpus_per_replica, "--cpus-per-replica"),
        ("GPU", cluster.gpus_per_replica, "--gpus-per-replica"),
    ):
        have = float(resources.get(name, 0.0))
        need = cluster.replicas * each
        if each > 0 and need > have + 1e-9:
            raise UsageError(
                f"{cluster.replicas} replica(s) of {each:g} {name} each need {need:g} {name}, and "
                f"the local Ray instance has {have:g}",
                hint=f"ask for fewer --replicas or a smaller {flag}, or join a cluster with --ray-address",
            )


__all__ = [
    "APP_NAME",
    "REPLICA_HEADER",
    "ClusterOptions",
    "ReplicaHeader",
    "ReplicaModel",
    "application",
    "deployment_options",
    "max_ongoing_requests",
    "replica_app",
    "serve_forever",
    "serving",
]
