"""The feature cache stores what each projector reads: the pooled vector, the feature tokens, or both
for a projector that does not say; entries of the older layout (every token and the pooled vector
under ``<identity>/<xx>/``) are cut down without encoding; a wrong entry is an error, never a
tensor of the wrong shape."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from anymodal.config import load_config
from anymodal.contract.errors import InputError, PluginError
from anymodal.contract.registry import Registry, load_registry
from anymodal.contract.specs import EncoderGeometry, EncoderOutput
from anymodal.projectors.specs import MLPOptions, ResamplerOptions, build_linear, build_mlp, build_resampler
from anymodal.runtime.model import AnyModalModel
from anymodal.train.data import MediaRef
from anymodal.train.features import PARTS, FeatureCache
from anymodal.train.metrics import read_metrics
from anymodal.train.trainer import Trainer

TOKENS, DIM = 4, 16  # the toy encoder's geometry: features [4, 16], pooled [16]
RESAMPLER = "{name: resampler, options: {num_queries: 2, num_heads: 2}}"
PROJECTORS = {
    # projector config -> (the entries' folder, what an entry holds)
    "linear": ("{name: linear}", "pooled", {"pooled": [DIM]}),
    "mlp-pooled": ("{name: mlp, options: {input: pooled}}", "pooled", {"pooled": [DIM]}),
    "mlp-tokens": ("{name: mlp, options: {input: tokens}}", "features", {"features": [TOKENS, DIM]}),
    "resampler": (RESAMPLER, "features", {"features": [TOKENS, DIM]}),
}


def make_trainer(
    config: Path, registry: Registry, *overrides: str, log: Callable[[str], None] = lambda text: None
) -> Trainer:
    loaded = load_config(config, ["train.stage=1", "train.save_every=0", *overrides], registry=registry)
    return Trainer(loaded, registry, log=log)


def cached(config: Path, registry: Registry, cache: Path, projector: str = "linear", *more: str) -> Trainer:
    spec = PROJECTORS[projector][0]
    return make_trainer(
        config, registry, f"train.feature_cache={cache}", f"model.modalities.toy.projector={spec}", *more
    )


def refs_of(run: Trainer) -> list[MediaRef]:
    return [ref for example in run.data.train + run.data.eval for ref in example.media]


def legacy_file(cache: FeatureCache, ref: MediaRef) -> Path:
    """Where the cache before this layout kept an input's entry (written out here, not asked of
    the code under test)."""
    digest = hashlib.sha256(cache.key(ref).encode()).hexdigest()
    return cache.directory / cache.identities[ref.modality][:24] / digest[:2] / f"{digest}.safetensors"


def write_legacy(cache: FeatureCache, refs: list[MediaRef]) -> dict[Path, dict[str, torch.Tensor]]:
    """The entries the old cache wrote for ``refs``: every token and the pooled vector."""
    model = cache.model
    outputs = model.encode_features([model.prepare(ref.modality, ref.path) for ref in refs])
    written = {}
    for ref, output in zip(refs, outputs, strict=True):
        tensors = {"features": output.features.contiguous(), "pooled": output.pooled.contiguous()}
        file = legacy_file(cache, ref)
        file.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(file))
        written[file] = tensors
    return written


def refuse_encoding(run: Trainer, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(inputs: Any) -> Any:
        raise AssertionError(f"encoded {len(inputs)} input(s)")

    monkeypatch.setattr(run.model, "encode_features", refuse)


@pytest.mark.parametrize("projector", list(PROJECTORS))
def test_entries_hold_exactly_what_the_projector_reads(projector, train_config, toy_registry, tmp_path):
    _, folder, shapes = PROJECTORS[projector]
    run = cached(train_config, toy_registry, tmp_path / "features", projector)
    assert run.cache is not None
    refs = refs_of(run)
    assert run.cache.fill(refs, 4) == 16
    entries = sorted((tmp_path / "features").rglob("*.safetensors"))
    assert len(entries) == 16 and {entry.parts[-3] for entry in entries} == {folder}
    for entry in entries:
        assert {name: list(t.shape) for name, t in load_file(entry).items()} == shapes
    # What is stored is the encoder's own output; the part not stored loads empty.
    ref = refs[0]
    (direct,) = run.model.encode_features([run.model.prepare(ref.modality, ref.path)])
    loaded = run.cache.load(ref)
    for part in PARTS:
        if part in shapes:
            assert torch.equal(getattr(loaded, part), getattr(direct, part))
        else:
            assert getattr(loaded, part).numel() == 0


def test_a_projector_that_does_not_say_what_it_reads_gets_everything(train_config, toy_registry, tmp_path):
    run = cached(train_config, toy_registry, tmp_path / "unused")
    del run.model.projectors["toy"].reads
    cache = FeatureCache(tmp_path / "features", run.model)
    assert cache.parts == {"toy": ("features", "pooled")} and cache.describe() == "toy: features+pooled"
    cache.fill(refs_of(run), 4)
    (entry, *_) = (tmp_path / "features").rglob("*.safetensors")
    assert entry.parts[-3] == "features+pooled"
    assert {name: list(t.shape) for name, t in load_file(entry).items()} == {
        "features": [TOKENS, DIM],
        "pooled": [DIM],
    }
    run.model.projectors["toy"].reads = "pooled"  # a string, not a tuple of parts
    with pytest.raises(PluginError, match=r"toy projector declares reads='pooled'; it must be a tuple"):
        FeatureCache(tmp_path / "features", run.model)


BUILDS: dict[str, Callable[[], torch.nn.Module]] = {
    "linear": lambda: build_linear(GEOMETRY, 8),
    "mlp-pooled": lambda: build_mlp(GEOMETRY, 8, MLPOptions(input="pooled")),
    "mlp-tokens": lambda: build_mlp(GEOMETRY, 8, MLPOptions(input="tokens")),
    "resampler": lambda: build_resampler(GEOMETRY, 8, ResamplerOptions(num_queries=2, num_heads=2)),
}
GEOMETRY = EncoderGeometry(feature_dim=12, num_tokens=3, pooled_dim=10)


@pytest.mark.parametrize("projector", list(BUILDS))
def test_each_core_projector_reads_what_it_declares(projector):
    """The cache trusts ``reads``: a part not declared must not reach the projection."""
    module = BUILDS[projector]()
    declared = module.reads
    assert declared == tuple(PROJECTORS[projector][2])
    good = {"features": torch.randn(2, 3, 12), "pooled": torch.randn(2, 10)}
    for part in PARTS:
        poisoned = EncoderOutput(**{**good, part: torch.full_like(good[part], float("nan"))})
        with torch.no_grad():
            finite = bool(torch.isfinite(module(poisoned)).all())
        assert finite == (part not in declared), part


def test_switching_projector_kind_encodes_what_the_new_one_reads(
    train_config, toy_registry, tmp_path, monkeypatch
):
    cache = tmp_path / "features"
    pooled = cached(train_config, toy_registry, cache, "linear")
    assert pooled.cache is not None
    refs = refs_of(pooled)
    pooled.cache.fill(refs, 4)
    tokens = cached(train_config, toy_registry, cache, "resampler")
    assert tokens.cache is not None and len(tokens.cache.missing(refs)) == 16  # pooled entries lack tokens
    assert tokens.cache.fill(refs, 4) == 16
    assert tokens.cache.load(refs[0]).features.shape == (TOKENS, DIM)
    # Both kinds are now there; an mlp on the pooled vector reads the linear projector's entries.
    again = cached(train_config, toy_registry, cache, "mlp-pooled")
    assert again.cache is not None
    refuse_encoding(again, monkeypatch)
    assert again.cache.missing(refs) == [] and again.cache.fill(refs, 4) == 0


def test_old_full_entries_are_cut_down_without_encoding(train_config, toy_registry, tmp_path, monkeypatch):
    plain = make_trainer(
        train_config, toy_registry, "train.max_steps=3", f"train.output_dir={tmp_path / 'a'}"
    )
    expected = plain.fit().losses
    cache = tmp_path / "features"
    writer = cached(train_config, toy_registry, cache)
    assert writer.cache is not None
    refs = refs_of(writer)
    legacy = write_legacy(writer.cache, refs)
    logged: list[str] = []
    run = cached(
        train_config, toy_registry, cache, "linear", "train.max_steps=3", f"train.output_dir={tmp_path / 'b'}"
    )
    run.log = logged.append
    assert run.cache is not None and len(run.cache.missing(refs)) == 16
    refuse_encoding(run, monkeypatch)  # neither the fill nor the steps may encode
    losses = run.fit().losses
    np.testing.assert_allclose(losses, expected, rtol=1e-6)
    assert "feature cache: 16 made from full entries already there, 0 encoded" in logged
    for ref in refs:
        entry = load_file(run.cache.path(ref))
        assert list(entry) == ["pooled"]
        assert torch.equal(entry["pooled"], legacy[legacy_file(run.cache, ref)]["pooled"])
    # The old entries also serve a projector on tokens, and are left in place.
    tokens = cached(train_config, toy_registry, cache, "mlp-tokens")
    assert tokens.cache is not None
    refuse_encoding(tokens, monkeypatch)
    assert tokens.cache.fill(refs, 4) == 0
    ref = refs[0]
    assert torch.equal(tokens.cache.load(ref).features, legacy[legacy_file(tokens.cache, ref)]["features"])
    assert all(file.is_file() for file in legacy)


def test_an_old_entry_that_lacks_a_part_or_is_broken_is_encoded_again(train_config, toy_registry, tmp_path):
    run = cached(train_config, toy_registry, tmp_path / "features")
    assert run.cache is not None
    refs = refs_of(run)[:3]
    legacy = write_legacy(run.cache, refs)
    files = list(legacy)
    save_file({"features": legacy[files[0]]["features"]}, str(files[0]))  # no pooled vector
    files[1].write_bytes(b"not a safetensors file")
    assert run.cache.fill(refs, 4) == 2
    for ref, file in zip(refs, files, strict=True):
        (direct,) = run.model.encode_features([run.model.prepare(ref.modality, ref.path)])
        assert torch.equal(run.cache.load(ref).pooled, direct.pooled), file


def test_an_entry_that_holds_the_wrong_part_is_an_error_not_a_wrong_shape(
    train_config, toy_registry, tmp_path
):
    run = cached(train_config, toy_registry, tmp_path / "features")
    assert run.cache is not None
    ref = refs_of(run)[0]
    run.cache.fill([ref], 1)
    file = run.cache.path(ref)
    save_file({"features": torch.zeros(TOKENS, DIM)}, str(file))
    with pytest.raises(InputError, match=r"holds features but no pooled, which the toy projector reads"):
        run.cache.load(ref)
    save_file({"pooled": torch.zeros(TOKENS, DIM)}, str(file))
    with pytest.raises(InputError, match=r"holds pooled of shape \[4, 16\], where the toy encoder's is 1-D"):
        run.cache.load(ref)
    file.write_bytes(b"garbage")
    with pytest.raises(InputError, match=r"cannot be read") as error:
        run.cache.load(ref)
    assert error.value.hint is not None and "delete it" in error.value.hint


def test_a_run_resumed_with_the_cache_in_place_continues_exactly(train_config, toy_registry, tmp_path):
    cache = tmp_path / "features"
    steps = ("train.max_steps=6", "train.stage=2")
    full = cached(
        train_config, toy_registry, cache, "linear", *steps, f"train.output_dir={tmp_path / 'full'}"
    )
    expected = full.fit().losses

    def interrupt(step: int, loss: float) -> None:
        if step == 3:
            raise KeyboardInterrupt

    cut_dir = f"train.output_dir={tmp_path / 'cut'}"
    with pytest.raises(KeyboardInterrupt):
        cached(train_config, toy_registry, cache, "linear", *steps, cut_dir).fit(on_step=interrupt)
    logged: list[str] = []
    resumed = Trainer(
        load_config(
            train_config,
            ["train.save_every=0", f"train.feature_cache={cache}", *steps, cut_dir],
            registry=toy_registry,
        ),
        toy_registry,
        resume="latest",
        log=logged.append,
    )
    assert resumed.fit().step == 6
    assert f"feature cache {cache} (toy: pooled): 0 new input(s)" in logged
    assert any(line.startswith("resumed from") and line.endswith("at step 3") for line in logged)
    assert [m["loss"] for m in read_metrics(tmp_path / "cut") if "loss" in m] == expected


def write_pngs(folder: Path, count: int) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    files = []
    for index in range(count):
        pixels = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index}.png")
        files.append(folder / f"{index}.png")
    return files


def test_a_pooled_projector_shrinks_an_imagebind_cache(tiny_llm, tmp_path):
    from anymodal.testing import TINY_IMAGEBIND, save_tiny_imagebind

    weights = save_tiny_imagebind(tmp_path / "imagebind.pth")
    config = tmp_path / "model.yaml"
    encoder = {"weights": str(weights), "options": {"preset": "huge", "config": TINY_IMAGEBIND}}
    config.write_text(
        f"model:\n  llm: {{path: {tiny_llm}}}\n  modalities:\n"
        f"    image: {{encoder: {encoder}, projector: {{name: linear}}}}\n"
    )
    registry = load_registry()
    model = AnyModalModel.from_config(load_config(config, registry=registry).config.model, registry)
    refs = [MediaRef(0, "image", file) for file in write_pngs(tmp_path / "images", 4)]
    cache = FeatureCache(tmp_path / "features", model)
    before = write_legacy(cache, refs)  # the old cache: all 257 tokens and the pooled vector
    assert {tuple(t["features"].shape) for t in before.values()} == {(257, 16)}
    assert cache.fill(refs, 4) == 0
    old_bytes = sum(file.stat().st_size for file in before)
    new_bytes = sum(cache.path(ref).stat().st_size for ref in refs)
    assert [list(load_file(cache.path(ref))["pooled"].shape) for ref in refs] == [[24]] * 4
    # 257 x 16 + 24 floats and a header per entry before; 24 floats and a header now.
    assert old_bytes > 4 * (257 * 16 + 24) * 4 and new_bytes < 4 * (24 * 4 + 100)
    assert old_bytes / new_bytes > 50
