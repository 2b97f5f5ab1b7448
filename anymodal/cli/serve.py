"""``anymodal serve``: the model over an OpenAI-compatible HTTP API (see docs/serving.md).

The model loads once, its notes are shown as ``anymodal chat`` shows them, then uvicorn serves
:func:`anymodal.serve.app.create_app` until Ctrl-C. It listens on 127.0.0.1 unless told otherwise,
and warns when it listens elsewhere without an API key.
"""

from __future__ import annotations

import importlib.util
import ipaddress

import click

from anymodal.cli.notes import show_model_notes
from anymodal.contract.errors import UsageError
from anymodal.contract.registry import get_registry


def serve() -> click.Command:
    @click.command("serve")
    @click.option(
        "--model", "model_source", metavar="PRESET|DIR", help="Preset name, YAML file or model directory."
    )
    @click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
    @click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port.")
    @click.option(
        "--api-key",
        envvar="ANYMODAL_API_KEY",
        metavar="KEY",
        help="Require 'Authorization: Bearer KEY' on /v1 (or set ANYMODAL_API_KEY).",
    )
    @click.option(
        "--allow-path",
        "allow_paths",
        multiple=True,
        metavar="DIR",
        type=click.Path(exists=True, file_okay=False),
        help="Let requests name files (paths, file:// URLs) under DIR; repeatable.",
    )
    @click.option("--allow-remote", is_flag=True, help="Fetch http(s) URLs that requests name.")
    @click.option(
        "--max-request-mb",
        default=64.0,
        show_default=True,
        type=click.FloatRange(min=0, min_open=True),
        help="Largest request body, and largest fetched URL, in MB.",
    )
    @click.option(
        "--max-queue",
        default=8,
        show_default=True,
        type=click.IntRange(min=0),
        help="Requests that may wait while one runs; more get 429.",
    )
    @click.option(
        "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key; repeatable."
    )
    def command(
        model_source: str | None,
        host: str,
        port: int,
        api_key: str | None,
        allow_paths: tuple[str, ...],
        allow_remote: bool,
        max_request_mb: float,
        max_queue: int,
        overrides: tuple[str, ...],
    ) -> None:
        """Serve a model over an OpenAI-compatible HTTP API."""
        _check_libraries()
        from anymodal.config import load_config
        from anymodal.runtime.chat import ChatSession
        from anymodal.serve.app import ServeOptions, create_app

        registry = get_registry()
        loaded = load_config(model_source, list(overrides), registry)
        session = ChatSession.from_config(loaded.config, registry)
        show_model_notes(loaded)
        if not api_key and not is_loopback(host):
            click.secho(
                f"warning: listening on {host} without --api-key: anyone who can reach port {port} "
                "can use this model",
                fg="yellow",
                err=True,
            )
        options = ServeOptions(
            model_id=loaded.source,
            api_key=api_key or None,
            allow_paths=allow_paths,
            allow_remote=allow_remote,
            max_request_mb=max_request_mb,
            max_queue=max_queue,
        )
        app = create_app(session, registry, options)
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"anymodal serve: {loaded.source} at http://{shown}:{port}/v1 (Ctrl-C stops)", err=True)
        import uvicorn

        uvicorn.run(app, host=host, port=port, log_level="info")

    return command


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
