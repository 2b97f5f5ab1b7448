"""The plugin conformance suite: what every modality plugin must do, as pytest tests.

A plugin author runs it with one class in their tests::

    from pathlib import Path

    from anymodal.testing import PluginConformance


    class TestLidarConformance(PluginConformance):
        plugin = "anymodal_lidar.plugin"  # the module the entry point names

        def write_sample(self, modality: str, directory: Path) -> Path:
            path = directory / "scan.npy"
            ...  # write one small, valid input file
            return path

Every check runs once per modality the plugin registers, on the plugin module itself (registered
without entry points, so it runs before the plugin is installed; once installed, its entry point
is checked too). The checks: the contract and registration, the spec's metadata, a cheap import,
one clear :class:`anymodal.InputError` for missing, empty, wrong-kind and corrupt files, only
anymodal errors (no crash, hang or memory blow-up) for damaged versions of the sample file,
preprocessing that is float32, finite and deterministic, tensor layouts (where the plugins declare
them) that agree between the preprocessing and its encoder and that the preprocessed sample has,
encoder outputs of the shapes the encoder's geometry declares (the same for an input alone or in
a batch), a projector that maps into the LLM's width and passes gradients, a chat turn through a
tiny LLM, and a training step that moves every projector weight while the encoder stays frozen.

Override :meth:`PluginConformance.modality_config` to choose a small encoder (the default is the
modality's own defaults, with ImageBind at toy width), ``heavy_modules`` to name what importing
the plugin must not import, and ``corrupt_bytes`` for a format where the default garbage is valid.
Everything runs on the CPU in float32.

It stays one module of under 500 lines: the suite is one class that a plugin author subclasses
once, and its checks read best side by side.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest

import anymodal
from anymodal.contract.layouts import declared_layouts, emitted_layout, layout_disagreement, layout_mismatch
from anymodal.contract.registry import ENTRY_POINT_GROUP, Registry, load_registry
from anymodal.contract.specs import EncoderSpec, ModalitySpec, TensorLayout
from anymodal.testing.plugins import prepare_file, registered_modality
from anymodal.testing.tiny import TINY_IMAGEBIND, save_tiny_imagebind

#: What the scripted LLM of the chat check answers, whatever it is asked.
REPLY = "Seen and understood."
QUESTION = "What is this?"


def default_modality_config(spec: ModalitySpec, directory: Path) -> dict[str, Any]:
    """The ``model.modalities.<name>`` block the suite uses unless a plugin says otherwise: the
    modality's defaults; ImageBind, the usual default encoder, at :data:`TINY_IMAGEBIND` width and
    loaded from a checkpoint in the released format written into ``directory``."""
    if spec.default_encoder == "imagebind":
        weights = save_tiny_imagebind(directory / "imagebind_tiny.pth")
        return {"encoder": {"weights": str(weights), "options": {"preset": "huge", "config": TINY_IMAGEBIND}}}
    return {}


def plugin_modalities(module_name: str) -> list[str]:
    """The names of the modalities ``module_name`` registers, for parametrising the suite."""
    module = importlib.import_module(module_name)
    specs: list[ModalitySpec] = []
    module.register_modalities(specs.append)
    return [spec.name for spec in specs]


class PluginConformance:
    """Subclass as ``Test<Name>`` in a plugin's tests; set :attr:`plugin`, define :meth:`write_sample`."""

    #: Import path of the plugin module, the one the ``anymodal`` entry point names.
    plugin: ClassVar[str] = ""
    #: Modules that importing the plugin must leave unimported (they load when a file is read).
    heavy_modules: ClassVar[tuple[str, ...]] = ("torch", "numpy", "transformers")
    #: Contents of the "corrupt file" written with each of the modality's file kinds.
    corrupt_bytes: ClassVar[bytes] = b"\x00\xff\xfe this is not a valid file of any kind \x80\x81\n" * 8
    #: Damaged versions of the sample file that :meth:`test_damaged_samples_give_only_anymodal_errors`
    #: tries (seeded; see :mod:`anymodal.testing.fuzz`). Fuzz more kinds in the plugin's own tests.
    fuzz_examples: ClassVar[int] = 20

    # --- what a plugin author provides ------------------------------------------------------

    def write_sample(self, modality: str, directory: Path) -> Path:
        """Write one small, valid input file of ``modality`` into ``directory``; return its path."""
        raise NotImplementedError(f"{type(self).__name__} must define write_sample(modality, directory)")

    def modality_config(self, modality: str, directory: Path) -> dict[str, Any]:
        """The ``model.modalities.<modality>`` config block (``encoder``, ``projector``,
        ``preprocess``) for the checks that build a model; keep its encoder small. ``directory``
        is scratch space, e.g. for a tiny checkpoint in the encoder's real format."""
        spec = registered_modality(importlib.import_module(self.plugin), modality)
        return default_modality_config(spec, directory)

    # --- parametrisation and fixtures -------------------------------------------------------

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "modality" in metafunc.fixturenames:
            metafunc.parametrize("modality", plugin_modalities(self.plugin), scope="class")

    @pytest.fixture(scope="class")
    @classmethod
    def plugin_module(cls) -> ModuleType:
        if not cls.plugin:
            pytest.fail(f"{cls.__name__} must set `plugin` to the plugin module's import path")
        return importlib.import_module(cls.plugin)

    @pytest.fixture(scope="class")
    @classmethod
    def registry(cls, plugin_module: ModuleType) -> Registry:
        return load_registry(plugins=[plugin_module])

    @pytest.fixture(scope="class")
    @classmethod
    def spec(cls, registry: Registry, modality: str) -> ModalitySpec:
        if modality not in registry.modalities:
            failed = "; ".join(f"{p.label}: {p.error}" for p in registry.failed) or "none failed"
            pytest.fail(f"modality {modality!r} did not register (plugins that failed: {failed})")
        return registry.modalities[modality]

    @pytest.fixture(scope="class")
    @classmethod
    def workdir(cls, tmp_path_factory: pytest.TempPathFactory, modality: str) -> Path:
        return tmp_path_factory.mktemp(f"conformance-{modality}")

    @pytest.fixture(scope="class")
    @classmethod
    def sample(cls, workdir: Path, modality: str) -> Path:
        directory = workdir / "sample"
        directory.mkdir()
        path = Path(cls().write_sample(modality, directory))
        assert path.is_file(), f"write_sample({modality!r}) returned {path}, which is not a file"
        return path

    @pytest.fixture(scope="class")
    @classmethod
    def block(cls, workdir: Path, modality: str) -> dict[str, Any]:
        directory = workdir / "config"
        directory.mkdir()
        return cls().modality_config(modality, directory)

    @pytest.fixture(scope="class")
    @classmethod
    def llms(cls, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
        from anymodal.testing.tiny import save_scripted_llm, save_tiny_llm

        root = tmp_path_factory.mktemp("conformance-llm")
        return {
            "scripted": save_scripted_llm(root / "scripted", REPLY),
            "random": save_tiny_llm(root / "random"),
        }

    @pytest.fixture(scope="class")
    @classmethod
    def chat_config(
        cls,
        workdir: Path,
        registry: Registry,
        spec: ModalitySpec,
        block: dict[str, Any],
        llms: dict[str, Path],
    ) -> Any:
        if "hf" not in registry.bridges:
            pytest.fail(
                "the chat and training checks run a tiny LLM through anymodal-hf: pip install anymodal-hf"
            )
        return _load(workdir / "chat.yaml", registry, _model_section(llms["scripted"], spec.name, block))

    @pytest.fixture(scope="class")
    @classmethod
    def model(cls, chat_config: Any, registry: Registry) -> Any:
        from anymodal.runtime.model import AnyModalModel

        return AnyModalModel.from_config(chat_config.config.model, registry)

    # --- registration and metadata ----------------------------------------------------------

    def test_declares_the_contract_and_registers_cleanly(
        self, plugin_module: ModuleType, spec: ModalitySpec, registry: Registry
    ) -> None:
        assert getattr(plugin_module, "ANYMODAL_CONTRACT", None) == anymodal.CONTRACT_VERSION
        owner = registry.owners[("modality", spec.name)]
        assert owner.status == "ok" and owner.name in (
            plugin_module.__name__,
            *_entry_point_names(self.plugin),
        )

    def test_spec_metadata(self, registry: Registry, spec: ModalitySpec, modality: str) -> None:
        assert spec.description.strip(), f"modality {modality!r} needs a description (shown in chat --help)"
        assert spec.file_kinds, f"modality {modality!r} accepts no file kinds"
        assert len(set(spec.file_kinds)) == len(spec.file_kinds), f"repeated file kinds: {spec.file_kinds}"
        assert spec.placeholder and spec.flag.startswith("--")
        assert callable(spec.loader) and callable(spec.preprocess)
        encoder = registry.get("encoder", spec.default_encoder)
        assert not encoder.modalities or modality in encoder.modalities, (
            f"default encoder {encoder.name!r} does not accept {modality!r} (it lists {encoder.modalities})"
        )
        registry.get("projector", spec.default_projector)

    def test_installed_distribution_has_the_entry_point(self, plugin_module: ModuleType) -> None:
        found = _entry_points_of(self.plugin)
        if not found:
            pytest.skip(
                f"no installed distribution has an {ENTRY_POINT_GROUP!r} entry point for {self.plugin}"
            )
        dist = found[0].dist
        assert dist is not None and dist.version
        requires = [r.split(";")[0].replace(" ", "") for r in dist.requires or []]
        assert any(
            r.lower().startswith("anymodal") and not r.lower().startswith("anymodal-") for r in requires
        ), f"{dist.name} should require anymodal (with the versions it supports); it requires {requires}"

    def test_importing_the_plugin_is_cheap(self) -> None:
        code = (
            f"import sys, {self.plugin}\n"
            f"heavy = sorted(m for m in {self.heavy_modules!r} if m in sys.modules)\n"
            "assert not heavy, f'importing the plugin imported {heavy}'\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr.strip()

    # --- files: bad ones and good ones ------------------------------------------------------

    def test_missing_empty_and_wrong_kind_files_are_input_errors(
        self, spec: ModalitySpec, tmp_path: Path
    ) -> None:
        missing = tmp_path / f"missing{spec.file_kinds[0]}"
        empty = tmp_path / f"empty{spec.file_kinds[0]}"
        empty.touch()
        wrong = tmp_path / "notes.anymodal-wrong-kind"
        wrong.write_text("text")
        for path in (missing, empty, wrong):
            with pytest.raises(anymodal.InputError, match=re.escape(path.name)):
                prepare_file(spec, path)

    def test_loader_refuses_a_corrupt_file_of_each_kind(self, spec: ModalitySpec, tmp_path: Path) -> None:
        for kind in spec.file_kinds:
            path = tmp_path / f"corrupt{kind}"
            path.write_bytes(self.corrupt_bytes)
            try:
                decoded = spec.loader(path)
            except anymodal.InputError as error:
                assert path.name in str(error), (
                    f"the error for a corrupt {kind} file does not name it: {error}"
                )
            else:
                pytest.fail(
                    f"the loader decoded a corrupt {kind} file instead of raising InputError: {decoded!r}"
                )

    def test_damaged_samples_give_only_anymodal_errors(self, spec: ModalitySpec, sample: Path) -> None:
        from anymodal.testing.fuzz import fuzz_modality

        fuzz_modality(spec, sample, examples=self.fuzz_examples)

    def test_preprocessing_is_float32_finite_and_deterministic(
        self, spec: ModalitySpec, sample: Path, block: dict[str, Any]
    ) -> None:
        import torch

        options = block.get("preprocess", {})
        first, second = prepare_file(spec, sample, **options), prepare_file(spec, sample, **options)
        assert isinstance(first, torch.Tensor) and first.dtype == torch.float32, type(first)
        assert first.dim() >= 1 and first.numel() > 0
        assert torch.isfinite(first).all(), "preprocessing produced NaN or infinite values"
        assert torch.equal(first, second), "preprocessing the same file twice gave different tensors"

    # --- declared tensor layouts -------------------------------------------------------------

    def test_preprocessing_emits_the_layout_its_encoder_takes(
        self, registry: Registry, spec: ModalitySpec, block: dict[str, Any]
    ) -> None:
        encoder, options = _configured_encoder(registry, spec, block)
        preprocess = block.get("preprocess", {})
        if declared_layouts(spec, preprocess, encoder, options) is None:
            silent = f"encoder {encoder.name} (EncoderSpec.takes)"
            if spec.emits is None:
                silent = f"the {spec.name} preprocessing (ModalitySpec.emits)"
            pytest.skip(f"{silent} declares no layout for {spec.name}: nothing to compare")
        problem = layout_disagreement(spec, preprocess, encoder, options)
        if problem:
            pytest.fail(problem)

    def test_preprocessed_sample_has_the_declared_layouts(
        self, registry: Registry, spec: ModalitySpec, sample: Path, block: dict[str, Any]
    ) -> None:
        encoder, options = _configured_encoder(registry, spec, block)
        preprocess = block.get("preprocess", {})
        claims = {
            "declares it emits": emitted_layout(spec, preprocess),
            f"encoder {encoder.name} declares it takes": (
                None if encoder.takes is None else encoder.takes(spec.name, options)
            ),
        }
        if all(layout is None for layout in claims.values()):
            pytest.skip(
                f"neither the {spec.name} preprocessing (ModalitySpec.emits) nor encoder "
                f"{encoder.name} (EncoderSpec.takes) declares a layout"
            )
        tensor = prepare_file(spec, sample, **preprocess)
        actual = TensorLayout(tuple(tensor.shape), str(tensor.dtype).removeprefix("torch."))
        for claim, layout in claims.items():
            reason = None if layout is None else layout_mismatch(actual, layout)
            if reason:
                pytest.fail(
                    f"the {spec.name} preprocessing returned {actual} for {sample.name}, "
                    f"but {claim} {layout} ({reason})"
                )

    # --- encoder and projector --------------------------------------------------------------

    def test_encoder_outputs_match_its_geometry(self, model: Any, modality: str, sample: Path) -> None:
        import torch

        encoder = model.encoders[modality]
        geometry = encoder.geometry
        assert isinstance(geometry, anymodal.EncoderGeometry)
        assert not encoder.training and not any(p.requires_grad for p in encoder.parameters())
        tensor = model.prepare(modality, sample).tensor
        with torch.no_grad():
            batch = encoder(torch.stack([tensor, 0.5 * tensor]))
            alone = encoder(tensor.unsqueeze(0))
        assert isinstance(batch, anymodal.EncoderOutput)
        assert tuple(batch.features.shape) == (2, geometry.num_tokens, geometry.feature_dim)
        assert tuple(batch.pooled.shape) == (2, geometry.pooled_dim)
        assert torch.isfinite(batch.features).all() and torch.isfinite(batch.pooled).all()
        # An input's encoding must not depend on what else is in its batch.
        torch.testing.assert_close(batch.features[:1], alone.features, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(batch.pooled[:1], alone.pooled, rtol=1e-4, atol=1e-5)

    def test_projector_maps_into_the_llm_and_passes_gradients(
        self, model: Any, modality: str, sample: Path
    ) -> None:

        prepared = model.prepare(modality, sample)
        (output,) = model.encode_features([prepared])
        projector = model.projectors[modality]
        hidden = model.bridge.hidden_size
        batched = anymodal.EncoderOutput(output.features.unsqueeze(0), output.pooled.unsqueeze(0))
        projected = projector(batched)
        assert tuple(projected.shape) == (1, projector.num_tokens, hidden)
        projector.zero_grad()
        projected.square().mean().backward()
        for name, parameter in projector.named_parameters():
            assert parameter.grad is not None and bool(parameter.grad.any()), f"no gradient reaches {name}"
        (embedded,) = model.encode([prepared])
        assert tuple(embedded.shape) == (projector.num_tokens, hidden)

    def test_encoders_built_from_one_config_agree(
        self, chat_config: Any, registry: Registry, spec: ModalitySpec, modality: str, sample: Path
    ) -> None:
        import torch

        from anymodal.runtime.model import build_encoder

        encoder_config = chat_config.config.model.modalities[modality].encoder
        first, second = (build_encoder(spec, encoder_config, registry) for _ in range(2))
        tensor = prepare_file(spec, sample, **chat_config.config.model.modalities[modality].preprocess)
        with torch.no_grad():
            a, b = first(tensor.unsqueeze(0)), second(tensor.unsqueeze(0))
        assert torch.equal(a.features, b.features) and torch.equal(a.pooled, b.pooled)

    # --- end to end -------------------------------------------------------------------------

    def test_a_chat_turn_through_a_tiny_llm(
        self, model: Any, chat_config: Any, registry: Registry, modality: str, sample: Path
    ) -> None:
        from anymodal.runtime.chat import ChatSession

        session = ChatSession.for_model(model, chat_config.config, registry)
        session.attach(modality, sample)
        assert "".join(session.ask(QUESTION)) == REPLY
        assert "".join(session.ask("And now?")) == REPLY
        assert session.encoded_count == 1, "an input was encoded again on the second turn"

    def test_a_training_step_moves_every_projector_weight(
        self,
        workdir: Path,
        registry: Registry,
        spec: ModalitySpec,
        modality: str,
        block: dict[str, Any],
        sample: Path,
        llms: dict[str, Path],
    ) -> None:
        import torch

        from anymodal.train.trainer import Trainer

        data = workdir / "train.json"
        conversation = [
            {"from": "human", "value": f"{spec.placeholder}\n{QUESTION}"},
            {"from": "gpt", "value": REPLY},
        ]
        data.write_text(json.dumps([{"id": 0, modality: str(sample), "conversations": conversation}]))
        train = {
            "stage": 1,
            "data": {"train": str(data)},
            "output_dir": str(workdir / "run"),
            "max_steps": 1,
            "batch_size": 1,
            "save_every": 1,
            # No decay, no warm-up: one Adam step moves a weight exactly when its gradient is non-zero.
            "optimizer": {"lr": 1e-3, "weight_decay": 0.0},
            "schedule": {"warmup_steps": 0, "decay": "constant"},
        }
        section = {**_model_section(llms["random"], modality, block), "train": train}
        trainer = Trainer(_load(workdir / "train.yaml", registry, section), registry, log=lambda _: None)
        projector, encoder = trainer.model.projectors[modality], trainer.model.encoders[modality]
        before = {name: p.detach().clone() for name, p in projector.named_parameters()}
        frozen = {name: p.detach().clone() for name, p in encoder.state_dict().items()}
        result = trainer.fit()
        trainer.accelerator.end_training()
        assert result.step == 1 and result.last_checkpoint is not None
        for name, parameter in projector.named_parameters():
            assert not torch.equal(parameter.detach(), before[name]), f"projector weight {name} did not train"
        for name, value in encoder.state_dict().items():
            assert torch.equal(value, frozen[name]), f"encoder weight {name} changed; encoders stay frozen"
        assert (result.last_checkpoint / "projectors" / f"{modality}.safetensors").is_file()


def _entry_points_of(module: str) -> list[metadata.EntryPoint]:
    return [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.value == module]


def _entry_point_names(module: str) -> list[str]:
    return [ep.name for ep in _entry_points_of(module)]


def _configured_encoder(
    registry: Registry, spec: ModalitySpec, block: Mapping[str, Any]
) -> tuple[EncoderSpec, Any]:
    """The encoder spec ``block`` picks (the modality's default unless it names one), and its
    options as its ``build`` gets them: an instance of its options dataclass, or None."""
    from anymodal.config import build

    section = block.get("encoder", {})
    encoder: EncoderSpec = registry.get("encoder", section.get("name") or spec.default_encoder)
    options = section.get("options", {})
    return encoder, build(encoder.options, options) if encoder.options else None


def _model_section(llm: Path, modality: str, block: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": {
            "llm": {"path": str(llm)},
            "template": "plain",
            "device": "cpu",
            "dtype": "float32",
            "modalities": {modality: block},
        },
        "generation": {"max_new_tokens": 16},
    }


def _load(file: Path, registry: Registry, content: dict[str, Any]) -> Any:
    """Validate ``content`` as a config file would be (JSON is YAML), so its errors read as a user's would."""
    from anymodal.config import load_config

    file.write_text(json.dumps(content, indent=2))
    return load_config(file, registry=registry)
