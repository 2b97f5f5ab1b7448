"""``anymodal serve``: the model over an OpenAI-compatible HTTP API (see docs/serving.md).

The model loads once, its notes are shown as ``anymodal chat`` shows them, then uvicorn serves
:func:`anymodal.serve.app.create_app` until Ctrl-C. It listens on 127.0.0.1 unless told otherwise,
and warns when it listens elsewhere without an API key.

The options of the served model and of what its requests may reach (:func:`model_options`,
:func:`media_options`) and its loading (:func:`load_model_config`, :func:`start_model`,
:func:`serve_options`) are shared with ``anymodal batch`` (:mod:`anymodal.cli.batch`), which
answers the same requests from a file.

With ``--ray`` the same application runs as replicas on Ray Serve instead of uvicorn
(:mod:`anymodal.serve.cluster`, docs/serving-ray.md): this process checks the config and shows
its notes, and each replica loads the model itself (:func:`load_replica_model`).
"""

from __future__ import annotations

import functools
import importlib.util
import ipaddress
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from anymodal.cli.notes import show_model_notes
from anymodal.contract.errors import UsageError
from anymodal.contract.registry import Registry, get_registry

if TYPE_CHECKING:
    from anymodal.config import LoadedConfig
    from anymodal.runtime.chat import ChatSession
    from anymodal.serve.cluster import ClusterOptions
    from anymodal.serve.service import ServeOptions

F = TypeVar("F", bound=Callable[..., Any])


def _with(options: Sequence[Callable[[F], F]]) -> Callable[[F], F]:
    """One decorator applying ``options`` so that ``--help`` lists them in the order given."""

    def apply(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return apply


def model_options() -> Callable[[F], F]:
    """``--model`` (as ``model_source``) and ``--set`` (as ``overrides``), as for ``anymodal chat``."""
    return _with(
        [
            click.option(
                "--model",
                "model_source",
                metavar="PRESET|DIR",
                help="Preset name, YAML file or model directory.",
            ),
            click.option(
                "--set",
                "overrides",
                multiple=True,
                metavar="KEY=VALUE",
                help="Override a config key; repeatable.",
            ),
        ]
    )


def media_options(allow_path_help: str, max_request_help: str) -> Callable[[F], F]:
    """What requests may reach: ``--allow-path`` (``allow_paths``), ``--allow-remote`` and
    ``--max-request-mb``; each command says in its help what its limits apply to."""
    return _with(
        [
            click.option(
                "--allow-path",
                "allow_paths",
                multiple=True,
                metavar="DIR",
                type=click.Path(exists=True, file_okay=False),
                help=allow_path_help,
            ),
            click.option("--allow-remote", is_flag=True, help="Fetch http(s) URLs that requests name."),
            click.option(
                "--max-request-mb",
                default=64.0,
                show_default=True,
                type=click.FloatRange(min=0, min_open=True),
                help=max_request_help,
            ),
        ]
    )


def load_model_config(model_source: str | None, overrides: Sequence[str]) -> tuple[Registry, LoadedConfig]:
    """The registry and the served model's config (checked, nothing loaded yet)."""
    from anymodal.config import load_config

    registry = get_registry()
    return registry, load_config(model_source, list(overrides), registry)


def start_model(registry: Registry, loaded: LoadedConfig) -> ChatSession:
    """The model loaded, and its notes shown as ``anymodal chat`` shows them."""
    from anymodal.runtime.chat import ChatSession

    session = ChatSession.from_config(loaded.config, registry)
    show_model_notes(loaded)
    return session


def serve_options(
    loaded: LoadedConfig,
    allow_paths: Sequence[str | Path],
    allow_remote: bool,
    max_request_mb: float,
    **more: Any,
) -> ServeOptions:
    """The :class:`~anymodal.serve.service.ServeOptions` of the shared options (the model id is the
    model's name as given, batching as ``generation.max_batch`` and ``batch_wait_ms`` say);
    ``more`` holds the command's own (``api_key``, ``max_queue``, ...)."""
    from anymodal.serve.service import ServeOptions

    generation = loaded.config.generation
    return ServeOptions(
        model_id=loaded.source,
        allow_paths=tuple(allow_paths),
        allow_remote=allow_remote,
        max_request_mb=max_request_mb,
        max_batch=generation.max_batch,
        batch_wait_ms=generation.batch_wait_ms,
        **more,
    )


def ray_options() -> Callable[[F], F]:
    """``--ray`` (as ``use_ray``) and the options of serving on Ray Serve, each needing ``--ray``."""
    return _with(
        [
            click.option(
                "--ray",
                "use_ray",
                is_flag=True,
                help="Serve replicas of the model on Ray Serve (the ray extra).",
            ),
            click.option(
                "--replicas", type=click.IntRange(min=1), help="With --ray: copies of the model [default: 1]."
            ),
            click.option(
                "--ray-address",
                metavar="ADDR",
                help="With --ray: join this Ray cluster (auto, HOST:PORT, ray://HOST:10001) instead of "
                "starting a local instance.",
            ),
            click.option(
                "--cpus-per-replica",
                type=click.FloatRange(min=0, min_open=True),
                help="With --ray: CPUs Ray reserves for each replica [default: 1].",
            ),
            click.option(
                "--gpus-per-replica",
                type=click.FloatRange(min=0),
                help="With --ray: GPUs for each replica; 0.5 puts two on a GPU [default: 0].",
            ),
        ]
    )


def serve() -> click.Command:
    @click.command("serve")
    @model_options()
    @click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
    @click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port.")
    @click.option(
        "--api-key",
        envvar="ANYMODAL_API_KEY",
        metavar="KEY",
        help="Require 'Authorization: Bearer KEY' on /v1 (or set ANYMODAL_API_KEY).",
    )
    @media_options(
        allow_path_help="Let requests name files (paths, file:// URLs) under DIR; repeatable.",
        max_request_help="Largest request body, and largest fetched URL, in MB.",
    )
    @click.option(
        "--max-queue",
        default=8,
        show_default=True,
        type=click.IntRange(min=0),
        help="Requests that may wait while one runs; more get 429.",
    )
    @ray_options()
    def command(
        model_source: str | None,
        overrides: tuple[str, ...],
        host: str,
        port: int,
        api_key: str | None,
        allow_paths: tuple[str, ...],
        allow_remote: bool,
        max_request_mb: float,
        max_queue: int,
        use_ray: bool,
        replicas: int | None,
        ray_address: str | None,
        cpus_per_replica: float | None,
        gpus_per_replica: float | None,
    ) -> None:
        """Serve a model over an OpenAI-compatible HTTP API."""
        _check_libraries()
        from anymodal.serve.app import create_app

        cluster = cluster_options(
            use_ray, host, port, replicas, ray_address, cpus_per_replica, gpus_per_replica
        )
        registry, loaded = load_model_config(model_source, overrides)
        if cluster is None:
            session = start_model(registry, loaded)
        else:  # each replica loads the model; the config is checked here first
            show_model_notes(loaded)
        if not api_key and not is_loopback(host):
            click.secho(
                f"warning: listening on {host} without --api-key: anyone who can reach port {port} "
                "can use this model",
                fg="yellow",
                err=True,
            )
        options = serve_options(
            loaded,
            allow_paths,
            allow_remote,
            max_request_mb,
            api_key=api_key or None,
            max_queue=max_queue,
        )
        if cluster is not None:
            serve_on_ray(model_source, overrides, options, cluster, ray_address)
            return
        app = create_app(session, registry, options)
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"anymodal serve: {loaded.source} at http://{shown}:{port}/v1 (Ctrl-C stops)", err=True)
        import uvicorn

        uvicorn.run(app, host=host, port=port, log_level="info")

    return command


def cluster_options(
    use_ray: bool,
    host: str,
    port: int,
    replicas: int | None,
    ray_address: str | None,
    cpus_per_replica: float | None,
    gpus_per_replica: float | None,
) -> ClusterOptions | None:
    """The Ray Serve deployment ``--ray`` asks for, or None without ``--ray`` (its options are then
    a usage error); a missing Ray is one too."""
    if not use_ray:
        named = zip(
            ("--replicas", "--ray-address", "--cpus-per-replica", "--gpus-per-replica"),
            (replicas, ray_address, cpus_per_replica, gpus_per_replica),
            strict=True,
        )
        given = [flag for flag, value in named if value is not None]
        if given:
            raise UsageError(
                f"{', '.join(given)} {'needs' if len(given) == 1 else 'need'} --ray",
                hint="anymodal serve --ray --replicas 2",
            )
        return None
    if port == 0:
        raise UsageError("--ray needs a fixed --port: every node's Ray proxy listens on it")
    try:
        import ray.serve  # noqa: F401  (checked here, used by anymodal.serve.cluster)
    except ImportError as error:
        raise UsageError(
            f"anymodal serve --ray needs Ray Serve, which is not installed ({error})",
            hint='pip install "anymodal[ray]"',
        ) from None
    from anymodal.serve.cluster import ClusterOptions

    return ClusterOptions(
        replicas=replicas or 1,
        cpus_per_replica=1.0 if cpus_per_replica is None else cpus_per_replica,
        gpus_per_replica=gpus_per_replica or 0.0,
        host=host,
        port=port,
    )


def load_replica_model(model_source: str | None, overrides: Sequence[str]) -> tuple[Registry, ChatSession]:
    """One Ray replica's copy of the served model, loaded as ``anymodal serve`` loads it."""
    registry, loaded = load_model_config(model_source, overrides)
    return registry, start_model(registry, loaded)


def serve_on_ray(
    model_source: str | None,
    overrides: Sequence[str],
    options: ServeOptions,
    cluster: ClusterOptions,
    ray_address: str | None,
) -> None:
    """``anymodal serve --ray``: the replicas up, then serving until Ctrl-C."""
    from anymodal.serve.cluster import ReplicaModel, serve_forever

    load = functools.partial(load_replica_model, model_source, tuple(overrides))
    where = f"the Ray cluster at {ray_address}" if ray_address else "a local Ray instance"
    click.echo(f"anymodal serve: starting {cluster.replicas} replica(s) on {where}", err=True)

    def announce(url: str) -> None:
        click.echo(
            f"anymodal serve: {options.model_id} at {url}/v1 on Ray Serve, {cluster.replicas} "
            "replica(s) (Ctrl-C stops)",
            err=True,
        )

    serve_forever(ReplicaModel(load, options), cluster, ray_address, announce)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (localhost, 127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost: it may resolve anywhere
        return False


def _check_libraries() -> None:
    missing = [name for name in ("fastapi", "uvicorn") if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(
            f"anymodal serve needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
            "not installed",
            hint='pip install "anymodal[serve]"',
        )
