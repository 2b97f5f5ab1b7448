"""``anymodal serve --ray``: the app as replicas on Ray Serve (anymodal.serve.cluster).

Without Ray: the replica header, the queue mapping and the command's options. With Ray (the ray
extra; skipped without it, a failure instead when ANYMODAL_REQUIRE_RAY is set): two replicas of
the built-in demo model on a local Ray instance, the official openai client against Ray's proxy,
both replicas answering, and one of them killed while requests run; and the command itself,
stopped with Ctrl-C.
"""

from __future__ import annotations

import base64
import functools
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from click.testing import CliRunner
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from starlette.testclient import TestClient

from anymodal.cli import cli
from anymodal.cli import serve as serve_cli
from anymodal.cli.serve import load_replica_model, start_model
from anymodal.contract.errors import ModelLoadError
from anymodal.serve import cluster as cluster_module
from anymodal.serve.cluster import (
    REPLICA_HEADER,
    ClusterOptions,
    ReplicaHeader,
    ReplicaModel,
    deployment_options,
    max_ongoing_requests,
    serving,
)
from anymodal.serve.service import ServeOptions

ROOT = Path(__file__).resolve().parents[2]
MODEL = "builtin:demo"
#: No request may take longer: one that does has hung.
TIMEOUT_S = 60
#: Seconds after Ray lists a killed replica as gone from which every request must succeed.
SETTLE_S = 1.0
#: Ray for a test: no usage statistics sent, no auth token written to ~/.ray.
LIGHT_RAY = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


def require_ray() -> Any:
    """The ray module; a skip without it, or a failure when ANYMODAL_REQUIRE_RAY says it must be there."""
    try:
        import ray
        from ray import serve  # noqa: F401
    except ImportError as error:
        if os.environ.get("ANYMODAL_REQUIRE_RAY", "") not in ("", "0"):
            pytest.fail(f"ANYMODAL_REQUIRE_RAY is set, but Ray Serve cannot be imported: {error}")
        pytest.skip(f'Ray Serve is not installed ({error}); pip install "anymodal[ray]"')
    return ray


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def image_message() -> dict[str, Any]:
    png = base64.b64encode((ROOT / "examples" / "red_circle.png").read_bytes()).decode()
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}
    return {"role": "user", "content": [image, {"type": "text", "text": "What shape is this?"}]}


def demo_model(max_queue: int = 2) -> ReplicaModel:
    """The demo model as ``anymodal serve --ray`` hands it to its replicas."""
    load = functools.partial(load_replica_model, None, ())
    return ReplicaModel(load, ServeOptions(model_id=MODEL, max_queue=max_queue))


@dataclass
class Outcome:
    started: float
    ended: float
    replica: str | None = None  # the replica that answered
    text: str = ""
    error: BaseException | None = None


def ask(client: openai.OpenAI, stream: bool = False) -> Outcome:
    started = time.monotonic()
    try:
        if stream:
            chunks = client.chat.completions.create(model=MODEL, messages=[image_message()], stream=True)
            text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
            replica = chunks.response.headers.get(REPLICA_HEADER)
        else:
            raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=[image_message()])
            text = raw.parse().choices[0].message.content or ""
            replica = raw.headers.get(REPLICA_HEADER)
    except Exception as error:  # openai's errors, or httpx's for a stream cut off mid-way
        return Outcome(started, time.monotonic(), error=error)
    return Outcome(started, time.monotonic(), replica, text)


# -- without Ray ------------------------------------------------------------------------------------


def test_the_replica_header_marks_every_response_and_lets_the_lifespan_through():
    events = []

    async def lifespan(app: FastAPI) -> Any:
        events.append("startup")
        yield
        events.append("shutdown")

    app = FastAPI(lifespan=lifespan)

    @app.get("/plain")
    async def plain() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def pieces() -> Any:
            yield b"data: 1\n\n"
            yield b"data: 2\n\n"

        return StreamingResponse(pieces(), media_type="text/event-stream")

    with TestClient(ReplicaHeader(app, "replica-7")) as client:
        assert events == ["startup"]
        plain_response = client.get("/plain")
        streamed = client.get("/stream")
        missing = client.get("/nowhere")
    assert events == ["startup", "shutdown"]
    assert plain_response.json() == {"ok": "yes"} and streamed.text == "data: 1\n\ndata: 2\n\n"
    assert missing.status_code == 404
    for response in (plain_response, streamed, missing):
        assert response.headers.get_list(REPLICA_HEADER) == ["replica-7"]
    assert plain_response.headers["content-type"] == "application/json"


def test_ray_sends_a_replica_what_its_own_queue_admits():
    settings = deployment_options(
        demo_model(max_queue=3), ClusterOptions(replicas=4, cpus_per_replica=0.5, gpus_per_replica=0.25)
    )
    assert max_ongoing_requests(3) == 4
    assert settings["num_replicas"] == 4
    assert settings["max_ongoing_requests"] == 4  # one running, three waiting: the replica's own 429 is next
    assert settings["max_queued_requests"] == 3  # and as many wait at each proxy once every replica is full
    assert settings["ray_actor_options"] == {"num_cpus": 0.5, "num_gpus": 0.25}
    none_waiting = deployment_options(demo_model(max_queue=0), ClusterOptions())
    assert none_waiting["max_ongoing_requests"] == 1 and none_waiting["max_queued_requests"] == 1
    assert none_waiting["ray_actor_options"] == {"num_cpus": 1.0}  # no GPU asked for, none reserved
    if "backpressure_config" in settings:  # Ray versions that have it: the server's own 429
        assert settings["backpressure_config"].status_code == 429


def test_a_replica_without_a_gpu_hides_the_gpus_and_loads_with_the_commands_loader(monkeypatch):
    import anymodal.serve.app

    built = []
    monkeypatch.setattr(anymodal.serve.app, "create_app", lambda *args: built.append(args) or "the app")
    options = ServeOptions(model_id="m")
    model = ReplicaModel(lambda: ("registry", "session"), options)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    with_gpu = cluster_module.replica_app(model, "r1", gpus=1)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"  # Ray's choice for a replica given GPUs
    without = cluster_module.replica_app(model, "r2", gpus=0)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""  # so model.device: auto means the CPU
    assert built == [("session", "registry", options)] * 2
    assert isinstance(with_gpu, ReplicaHeader) and with_gpu.app == "the app"
    assert without.header == (REPLICA_HEADER.encode(), b"r2")


def test_ray_options_need_ray():
    for flags in (["--replicas", "2"], ["--ray-address", "auto", "--gpus-per-replica", "1"]):
        result = CliRunner().invoke(cli, ["serve", *flags])
        assert result.exit_code == 2, result.output
        assert "needs --ray" in result.stderr or "need --ray" in result.stderr
        assert "Traceback" not in result.output


def test_a_missing_ray_is_one_usage_error_with_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # any import of ray now fails
    result = CliRunner().invoke(cli, ["serve", "--ray", "--replicas", "2"])
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: anymodal serve --ray needs Ray Serve, which is not installed")
    assert line.endswith('(hint: pip install "anymodal[ray]")')


def test_serve_ray_hands_the_replicas_the_model_and_options_it_got(monkeypatch):
    """The command with Ray faked: what it gives serve_forever, and that a replica's loader loads
    the model with the command's --set."""
    fake = types.ModuleType("ray")
    fake.serve = types.ModuleType("ray.serve")
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setitem(sys.modules, "ray.serve", fake.serve)
    calls = []

    def serve_forever(model, cluster, address, announce):
        calls.append((model, cluster, address))
        announce(cluster.url)

    monkeypatch.setattr(cluster_module, "serve_forever", serve_forever)
    started = []
    monkeypatch.setattr(serve_cli, "start_model", lambda *args: started.append(args) or start_model(*args))
    args = ["serve", "--ray", "--replicas", "3", "--ray-address", "auto", "--gpus-per-replica", "0.5"]
    args += ["--host", "0.0.0.0", "--port", "9321", "--max-queue", "5", "--api-key", "k"]
    result = CliRunner().invoke(cli, [*args, "--set", "generation.max_new_tokens=7"])
    assert result.exit_code == 0, result.output
    [(model, cluster, address)] = calls
    assert address == "auto"
    assert cluster == ClusterOptions(
        replicas=3, cpus_per_replica=1.0, gpus_per_replica=0.5, port=9321, host="0.0.0.0"
    )
    assert model.options.model_id == MODEL and model.options.max_queue == 5 and model.options.api_key == "k"
    assert "builtin:demo at http://0.0.0.0:9321/v1 on Ray Serve, 3 replica(s)" in result.stderr
    assert "built-in demo model" in result.stderr  # the notes, from the config checked here
    assert not started  # the command checks the config; only the replicas load the model
    shipped = pickle.loads(pickle.dumps(model))  # what Ray does with it, by reference
    registry, session = shipped.load()
    assert "image" in registry.modalities and len(started) == 1
    assert session.generation.max_new_tokens == 7 and "image" in session.model.specs


# -- on Ray -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_anymodal_serve_ray_serves_until_ctrl_c(tmp_path):
    require_ray()
    port = free_port()
    command = [sys.executable, "-m", "anymodal", "serve", "--ray", "--port", str(port), "--max-queue", "1"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **LIGHT_RAY}
    log = tmp_path / "serve.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            # Ctrl-C as a terminal sends it, even when this test runs where SIGINT is ignored.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        deadline = time.monotonic() + 120
        while "on Ray Serve, 1 replica(s)" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=TIMEOUT_S
        )
        outcome = ask(client)
        assert outcome.error is None and "circle" in outcome.text and outcome.replica
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    with pytest.raises(httpx.TransportError):  # Serve's proxy went down with it
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[Any]:
    """A local Ray instance of 2 CPUs for this module's tests (each deploys and shuts Serve down
    itself); shut down after them, its processes with it."""
    ray = require_ray()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in LIGHT_RAY.items():
            patch.setenv(name, value)
        ray.init(
            address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False
        )
        try:
            yield ray
        finally:
            ray.shutdown()


def replica_actor(ray: Any, replica: str) -> Any:
    """The Ray actor of the replica whose id is ``replica`` (as the header gives it)."""
    names = [
        entry
        for entry in ray.util.list_named_actors(all_namespaces=True)
        if entry["name"].endswith(f"#{replica}")
    ]
    assert len(names) == 1, names
    return ray.get_actor(names[0]["name"], namespace=names[0]["namespace"])


def wait_until_gone(ray: Any, replica: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while any(
        entry["name"].endswith(f"#{replica}") for entry in ray.util.list_named_actors(all_namespaces=True)
    ):
        assert time.monotonic() < deadline, f"replica {replica} still listed {TIMEOUT_S} s after ray.kill"
        time.sleep(0.05)


@pytest.mark.slow
def test_two_replicas_serve_the_whole_api_and_one_goes_on_when_the_other_is_killed(ray_instance):
    ray = ray_instance
    with serving(demo_model(), ClusterOptions(replicas=2, port=free_port())) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=TIMEOUT_S)
        # The whole API, through Ray's proxy.
        reply, streamed = ask(client), ask(client, stream=True)
        assert reply.error is None and "circle" in reply.text
        assert streamed.error is None and "circle" in streamed.text and streamed.replica
        image = image_message()["content"][0]
        vectors = [client.embeddings.create(model=MODEL, input=[image]).data for _ in range(2)]
        assert len(vectors[0]) == 1 and len(vectors[0][0].embedding) > 1
        assert vectors[0][0].embedding == pytest.approx(vectors[1][0].embedding)  # whichever replica
        assert [card.id for card in client.models.list()] == [MODEL]
        with pytest.raises(openai.NotFoundError) as unknown:
            client.chat.completions.create(model="no-such-model", messages=[image_message()])
        assert unknown.value.code == "model_not_found"
        with pytest.raises(openai.BadRequestError) as bad:
            client.chat.completions.create(model=MODEL, messages=[image_message()], n=2)
        assert bad.value.code is not None and bad.value.param == "n"
        health = httpx.get(f"{url}/health", timeout=TIMEOUT_S)
        assert health.json()["status"] == "ok" and health.json()["model"] == MODEL
        assert health.headers[REPLICA_HEADER]

        # Both replicas answer: one at a time, each request goes to either (Ray picks at random).
        seen = [ask(client, stream=i % 2 == 1) for i in range(24)]
        assert all(outcome.error is None and "circle" in outcome.text for outcome in seen)
        replicas = {outcome.replica for outcome in seen}
        assert len(replicas) == 2, replicas

        # Three clients keep asking while one replica is killed.
        outcomes: list[Outcome] = []
        refused: list[Outcome] = []
        stop = threading.Event()

        def keep_asking(stream: bool) -> None:
            while not stop.is_set():
                outcome = ask(client, stream)
                if isinstance(outcome.error, openai.RateLimitError):
                    # Ray's proxy may turn a request of a sudden burst away with a 429 before its
                    # router has heard the replicas' queue lengths (seen once in CI, with three
                    # clients): backpressure, which a client meets by waiting Retry-After, as
                    # openai's does by default. Counted, and bounded below.
                    refused.append(outcome)
                    time.sleep(1)
                    continue
                outcomes.append(outcome)

        clients = [threading.Thread(target=keep_asking, args=(i == 1,), daemon=True) for i in range(3)]
        for thread in clients:
            thread.start()
        deadline = time.monotonic() + TIMEOUT_S
        while len(outcomes) < 12:
            assert time.monotonic() < deadline, "the clients got no answers"
            time.sleep(0.02)
        victim = outcomes[-1].replica
        assert victim in replicas
        actor = replica_actor(ray, victim)
        killed_at = time.monotonic()
        ray.kill(actor, no_restart=True)
        wait_until_gone(ray, victim)
        # Ray lists the actor as dead before its process has quite gone and before the proxy has
        # heard: requests sent in that moment (milliseconds) may still fail. A second covers it,
        # and is far from the seconds a new replica takes to load the model (not waited for).
        settled_at = time.monotonic() + SETTLE_S
        while sum(outcome.started > settled_at for outcome in outcomes) < 15:
            assert time.monotonic() < deadline + TIMEOUT_S, "no answers after the kill"
            time.sleep(0.02)
        stop.set()
        for thread in clients:
            thread.join(TIMEOUT_S + 10)
        assert not any(thread.is_alive() for thread in clients), "a request hung"

    assert len(refused) <= 3, refused
    before = [outcome for outcome in outcomes if outcome.ended < killed_at]
    after = [outcome for outcome in outcomes if outcome.started > settled_at]
    assert len(before) >= 12 and all(outcome.error is None for outcome in before), before
    # In flight at the kill: an answer, or an error, but every request ended: none ran into the
    # client's timeout (and every client thread finished, above).
    hung = [outcome for outcome in outcomes if isinstance(outcome.error, openai.APITimeoutError)]
    assert not hung and all(outcome.ended - outcome.started < TIMEOUT_S for outcome in outcomes), hung
    assert len(after) >= 15 and all(
        outcome.error is None and "circle" in outcome.text for outcome in after
    ), [outcome.error for outcome in after if outcome.error]
    assert victim not in {outcome.replica for outcome in after}


@pytest.mark.slow
def test_replicas_that_cannot_load_the_model_are_one_error_naming_why(ray_instance, tmp_path):
    missing = tmp_path / "gone.yaml"  # as if the model's files were on the driver's machine only
    load = functools.partial(load_replica_model, str(missing), ())
    model = ReplicaModel(load, ServeOptions(model_id="gone"))
    with pytest.raises(ModelLoadError) as failed, serving(model, ClusterOptions(port=free_port())):
        pytest.fail("the replicas started without their model")
    assert str(failed.value).startswith("the replicas did not start: ")
    assert f"config file not found: {missing}" in str(failed.value)  # the replica's own error
