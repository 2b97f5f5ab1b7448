"""The assembled model: for each enabled modality an encoder and a projector, plus an LLM bridge.

Data flows one way: file -> loader -> preprocessor -> encoder -> projector -> the prompt's
``inputs_embeds`` (at the positions the processor reserved) -> bridge. Encoders are frozen.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from anymodal.config.device import resolve_placement
from anymodal.config.model_files import check_model_files
from anymodal.config.schema import EncoderConfig, ModalityConfig, ModelConfig
from anymodal.contract.bridge import Bridge
from anymodal.contract.errors import (
    AnymodalError,
    ConfigError,
    InputError,
    ModelLoadError,
    PluginError,
    UsageError,
)
from anymodal.contract.registry import Registry
from anymodal.contract.specs import EncoderGeometry, EncoderOutput, LLMSettings, ModalitySpec
from anymodal.files.atomic import file_digest
from anymodal.files.inputs import check_input_file
from anymodal.files.weights import load_weights
from anymodal.runtime.builtin_llm import resolve_llm_path
from anymodal.runtime.given import (
    EMBEDDING_FILE_KINDS,
    check_projector_reads_only,
    embedding_key,
    embedding_output,
    read_embedding_file,
)
from anymodal.runtime.processor import ProcessedPrompt, PromptProcessor, Slot
from anymodal.runtime.templates import resolve_template, tokenizer_template

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class PreparedInput:
    """One input file, checked, decoded and preprocessed; ``key`` identifies its content.

    An input given as an encoder output instead (:meth:`AnyModalModel.prepare_embedding`) has it
    in ``encoded`` and skips the encoder; its ``tensor`` is empty and ``path`` names its source."""

    modality: str
    path: Path
    tensor: torch.Tensor
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    encoded: EncoderOutput | None = field(default=None, repr=False)

    @functools.cached_property
    def key(self) -> str:
        """The content key (hashes the file on first use: training without a cache never asks)."""
        if self.encoded is not None:
            return embedding_key(self.modality, self.encoded)
        return input_key(self.modality, self.path, self.options)


class AnyModalModel(nn.Module):
    """Encoders and projectors keyed by modality, and the LLM bridge they feed."""

    def __init__(
        self,
        config: ModelConfig,
        bridge: Bridge,
        specs: dict[str, ModalitySpec],
        encoders: dict[str, nn.Module],
        projectors: dict[str, nn.Module],
    ) -> None:
        super().__init__()
        self.config = config
        self.bridge = bridge
        self.specs = specs
        self.encoders = nn.ModuleDict(encoders)
        self.projectors = nn.ModuleDict(projectors)
        self.llm = bridge.module  # registered so .to() and parameters() cover the whole model

    @classmethod
    def from_config(cls, config: ModelConfig, registry: Registry, init_seed: int = 0) -> AnyModalModel:
        """Load the bridge, then build and load every enabled modality's encoder and projector.
        Every missing weight file is named at once, before anything loads.

        Parts without a weights file keep their initial weights, drawn from ``init_seed`` (the
        trainer passes ``train.seed``), so an untrained part answers the same on every run; the
        caller's random state is left as it was."""
        check_model_files(config)
        place = resolve_placement(config.device, config.dtype, config.encoder_device)
        bridge = registry.get("bridge", config.llm.bridge).load(
            llm_settings(config), place.device, place.dtype
        )
        specs, encoders, projectors = {}, {}, {}
        shared: dict[Hashable, nn.Module] = {}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            for name, modality_config in config.modalities.items():
                specs[name] = registry.get("modality", name)
                if modality_config.projector.from_:  # its projector is another modality's, below
                    encoders[name] = _shared_encoder(specs[name], modality_config.encoder, registry, shared)
                    continue
                encoders[name], projectors[name] = _build_modality(
                    specs[name], modality_config, bridge.hidden_size, registry, shared
                )
            for name, modality_config in config.modalities.items():
                source = modality_config.projector.from_
                if source:
                    routed = _routed_projector(name, source, encoders, projectors)
                    norm = modality_config.projector.norm
                    projectors[name] = routed if norm is None else Rescaled(routed, norm)
        model = cls(config, bridge, specs, encoders, projectors)
        model.encoders.to(device=place.encoder_device, dtype=DTYPES[place.encoder_dtype])
        model.projectors.to(device=place.device, dtype=DTYPES[place.dtype])
        return model

    @property
    def device(self) -> torch.device:
        return self.bridge.device

    def tokens_per_input(self, modality: str) -> int:
        count: int = getattr(self.projectors[modality], "num_tokens")  # noqa: B009 - part of the contract
        return count

    def prompt_processor(self, registry: Registry, extra_stop: tuple[str, ...] = ()) -> PromptProcessor:
        """The processor that turns conversations into this model's prompts (template, spans, fusion)."""
        config = self.config
        template = resolve_template(
            config.template,
            registry.templates,
            fallback=config.fallback_template,
            tokenizer=tokenizer_template(self.bridge.chat_template_render),
        )
        return PromptProcessor(
            template=template,
            tokenizer=self.bridge,
            placeholders={name: spec.placeholder for name, spec in self.specs.items()},
            fusion=config.fusion,
            span_open=config.span_open,
            span_close=config.span_close,
            extra_stop=extra_stop,
            span_names={
                name: section.projector.from_
                for name, section in config.modalities.items()
                if section.projector.from_
            },
        )

    def check_modality(self, modality: str) -> ModalitySpec:
        """The spec of an enabled modality, or a usage error naming what this model accepts."""
        if modality not in self.specs:
            raise modality_not_enabled(modality, self.specs)
        return self.specs[modality]

    def prepare(self, modality: str, path: str | Path) -> PreparedInput:
        """Check, decode and preprocess one file. Every failure is an InputError naming the file."""
        spec = self.check_modality(modality)
        options = self.config.modalities[modality].preprocess
        return prepare_input(spec, path, options, self.config.max_input_mb)

    def prepare_embedding(
        self, modality: str, embedding: Any, source: str | Path = "tensor"
    ) -> PreparedInput:
        """An input given as what the modality's encoder returns for one input (a pooled vector
        ``[pooled_dim]``, features ``[tokens, feature_dim]``, both as a mapping, or an
        EncoderOutput), checked against the encoder's geometry and against what the projector
        reads; see :mod:`anymodal.runtime.given`. ``source`` names it in messages."""
        self.check_modality(modality)
        geometry: EncoderGeometry = getattr(self.encoders[modality], "geometry")  # noqa: B009 - the contract
        output, given = embedding_output(embedding, geometry, modality, str(source))
        check_projector_reads_only(self.projectors[modality], output, given, modality, str(source))
        return PreparedInput(modality, Path(source), torch.empty(0), encoded=output)

    def prepare_embedding_file(self, modality: str, path: str | Path) -> PreparedInput:
        """:meth:`prepare_embedding` of the tensor (or features/pooled mapping) saved in ``path``
        (``.pt``/``.pth``, read weights-only, or ``.safetensors``), after the usual input checks."""
        self.check_modality(modality)
        file = check_input_file(
            path, EMBEDDING_FILE_KINDS, modality=f"{modality} embedding", max_mb=self.config.max_input_mb
        )
        return self.prepare_embedding(modality, read_embedding_file(file, modality), file)

    def encode(self, inputs: Sequence[PreparedInput]) -> list[torch.Tensor]:
        """Project each input: a list of ``[num_tokens, hidden]`` tensors, in input order."""
        outputs = self.encode_features(inputs)
        return self.project([item.modality for item in inputs], outputs)

    def encode_features(self, inputs: Sequence[PreparedInput]) -> list[EncoderOutput]:
        """Each input through its frozen encoder: one unbatched :class:`EncoderOutput` per input
        (features ``[tokens, dim]``, pooled ``[dim]``). Inputs of one modality with equal shapes
        are encoded as one batch; an input given as an embedding is its own output."""
        out: list[EncoderOutput | None] = [item.encoded for item in inputs]  # given ones skip the encoder
        files = [index for index, item in enumerate(inputs) if item.encoded is None]
        groups = _groups([(inputs[i].modality, tuple(inputs[i].tensor.shape)) for i in files])
        for modality, positions in groups.items():
            indices = [files[position] for position in positions]
            encoder = self.encoders[modality[0]]
            # The encoder's own place (model.encoder_device may keep it off the LLM's device).
            param = next(encoder.parameters(), None)
            if param is None:
                param = next(self.projectors[modality[0]].parameters())
            batch = torch.stack([inputs[i].tensor for i in indices]).to(param.device)
            if batch.is_floating_point():
                batch = batch.to(param.dtype)
            with torch.no_grad():
                encoded: EncoderOutput = encoder(batch)
            for row, index in enumerate(indices):
                out[index] = EncoderOutput(encoded.features[row], encoded.pooled[row])
        return [item for item in out if item is not None]

    def project(self, modalities: Sequence[str], outputs: Sequence[EncoderOutput]) -> list[torch.Tensor]:
        """Encoder outputs through their modality's projector: ``[num_tokens, hidden]`` per input, in
        the LLM's dtype. Inputs of one modality are projected as one batch (gradients flow)."""
        out: list[torch.Tensor | None] = [None] * len(outputs)
        for (modality,), indices in _groups([(m,) for m in modalities]).items():
            projector = self.projectors[modality]
            param = next(projector.parameters())
            batch = EncoderOutput(
                torch.stack([outputs[i].features for i in indices]).to(param.device, param.dtype),
                torch.stack([outputs[i].pooled for i in indices]).to(param.device, param.dtype),
            )
            projected = projector(batch).to(self.bridge.dtype)
            for row, index in enumerate(indices):
                out[index] = projected[row]
        return [tensor for tensor in out if tensor is not None]

    def embed_batch(
        self, prompts: Sequence[ProcessedPrompt], inputs: Sequence[Sequence[PreparedInput]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ``inputs_embeds [batch, seq, hidden]`` and ``attention_mask [batch, seq]``.

        Rows may mix modalities freely: all inputs of the batch are encoded together (grouped by
        modality and shape), then scattered into each row's slots.
        """
        pad = self.bridge.pad_token_id
        length = max(len(p.input_ids) for p in prompts)
        ids = torch.full((len(prompts), length), pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), length), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, : len(prompt.input_ids)] = torch.tensor(prompt.input_ids)
            mask[row, : len(prompt.input_ids)] = 1
        flat = [item for row_inputs in inputs for item in row_inputs]
        projected = self.encode(flat) if flat else []
        counts = [len(row_inputs) for row_inputs in inputs]
        return self.fuse(ids, [p.slots for p in prompts], projected, counts), mask.to(self.device)

    def fuse(
        self,
        input_ids: torch.Tensor,
        slots: Sequence[Sequence[Slot]],
        projected: Sequence[torch.Tensor],
        counts: Sequence[int],
    ) -> torch.Tensor:
        """``inputs_embeds [batch, seq, hidden]``: ``input_ids [batch, seq]`` embedded, with each row's
        slots filled from its inputs' projections. ``projected`` holds every row's inputs in order,
        ``counts[b]`` of them for row b."""
        per_row, offset = [], 0
        for row_slots, count in zip(slots, counts, strict=True):
            row_projected = projected[offset : offset + count]
            offset += count
            per_row.append([sum_projected(row_projected, slot.input_indices) for slot in row_slots])
        return scatter_embeddings(self.bridge.embed(input_ids.to(self.device)), slots, per_row)


def _groups(keys: Sequence[tuple[Any, ...]]) -> dict[tuple[Any, ...], list[int]]:
    """Positions of equal keys, in first-seen order: which inputs can share one batch."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key, []).append(index)
    return groups


def llm_settings(config: ModelConfig) -> LLMSettings:
    """What the bridge is given to load the model's LLM (``builtin:`` names resolved to paths)."""
    return LLMSettings(
        path=resolve_llm_path(config.llm.path), adapter=config.llm.adapter, options=dict(config.llm.options)
    )


def modality_not_enabled(modality: str, enabled: Iterable[str], model: str = "this model") -> UsageError:
    """The error for an input of a modality the model was not built with."""
    accepts = ", ".join(sorted(enabled)) or "text only"
    return UsageError(
        f"{model} was not built with the {modality} modality (it accepts: {accepts})",
        hint=f"use a model whose config enables model.modalities.{modality}",
    )


def sum_projected(projected: Sequence[torch.Tensor], indices: tuple[int, ...]) -> torch.Tensor:
    """One slot's embedding: its input's projection, or (PandaGPT's sum fusion) the sum over its
    inputs, each projected with its own bias as PandaGPT does."""
    total = projected[indices[0]]
    for index in indices[1:]:
        total = total + projected[index]
    return total


def prepare_input(
    spec: ModalitySpec, path: str | Path, options: Mapping[str, Any], max_mb: float
) -> PreparedInput:
    """Check, decode and preprocess one file of ``spec``'s modality; failures are InputErrors."""
    file = check_input_file(path, spec.file_kinds, modality=spec.name, max_mb=max_mb)
    try:
        decoded = spec.loader(file)
        tensor = spec.preprocess(decoded, **options)
    except AnymodalError:
        raise
    except Exception as error:  # a plugin's decoder failing on a corrupt file
        raise InputError(
            f"cannot read {spec.name} file {file}: {type(error).__name__}: {error}",
            hint=f"check that it is a valid {'/'.join(spec.file_kinds)} file",
        ) from error
    return PreparedInput(spec.name, file, tensor, dict(options))


def input_key(modality: str, file: Path, options: Mapping[str, Any]) -> str:
    """What identifies a preprocessed input: its modality, file content and preprocessing options."""
    return f"{modality}:{file_digest(file)}:{sorted(options.items())}"


def build_encoder(spec: ModalitySpec, config: EncoderConfig, registry: Registry) -> nn.Module:
    """The modality's encoder, weights loaded, frozen and in eval mode."""
    encoder_spec = registry.get("encoder", config.name or spec.default_encoder)
    what = f"{encoder_spec.name} encoder of {spec.name}"
    if config.weights and encoder_spec.meta_load:
        # Built without memory or a random init (ImageBind-huge's vision trunk: 10 s on 2 CPU
        # cores), then every tensor is taken from the file.
        with torch.device("meta"):
            encoder: nn.Module = encoder_spec.build(spec.name, config.options or None)
        loader = getattr(encoder, "load_weights", None)
        if not callable(loader):
            raise PluginError(f"the {what} says meta_load=True but has no load_weights(path) method")
        loader(config.weights)
        named = [*encoder.named_parameters(), *encoder.named_buffers()]
        left = [name for name, tensor in named if tensor.is_meta]
        if left:
            raise ModelLoadError(
                f"the {what} left {len(left)} tensors unloaded from {config.weights}, e.g. {left[0]}",
                hint="its plugin says meta_load=True, so its load_weights must assign every tensor",
            )
        return encoder.requires_grad_(False).eval()
    # An encoder without a weights file keeps its initial weights: draw them from a fixed seed, so
    # the same config builds the same encoder in training, in chat and in the feature cache.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        encoder = encoder_spec.build(spec.name, config.options or None)
    if config.weights:
        loader = getattr(encoder, "load_weights", None)
        if callable(loader):
            loader(config.weights)
        else:
            load_weights(encoder, config.weights, what)
    return encoder.requires_grad_(False).eval()


def encoder_key(spec: ModalitySpec, config: EncoderConfig, registry: Registry) -> Hashable | None:
    """What identifies the modality's encoder among those of one model, when its encoder spec lets
    modalities share one (``EncoderSpec.share_key``); None when it does not."""
    encoder_spec = registry.get("encoder", config.name or spec.default_encoder)
    if encoder_spec.share_key is None:
        return None
    return (encoder_spec.name, config.weights, encoder_spec.share_key(spec.name, config.options or None))


def _shared_encoder(
    spec: ModalitySpec, config: EncoderConfig, registry: Registry, shared: dict[Hashable, nn.Module]
) -> nn.Module:
    """The modality's encoder: the one already in ``shared`` when its encoder spec says another
    modality's can serve, else a new one, kept there."""
    key = encoder_key(spec, config, registry)
    encoder = shared.get(key) if key is not None else None
    if encoder is None:
        encoder = build_encoder(spec, config, registry)
        if key is not None:
            shared[key] = encoder
    return encoder


class Rescaled(nn.Module):
    """Another modality's projector (``projector.from``), fed the pooled embedding L2-normalised and
    scaled to ``norm`` (``projector.norm``): the length that projector was trained on."""

    def __init__(self, projector: nn.Module, norm: float) -> None:
        super().__init__()
        self.projector = projector
        self.norm = norm
        self.num_tokens = projector.num_tokens
        self.reads = getattr(projector, "reads", ("features", "pooled"))

    def forward(self, output: EncoderOutput) -> torch.Tensor:
        pooled = torch.nn.functional.normalize(output.pooled, dim=-1) * self.norm
        projected: torch.Tensor = self.projector(EncoderOutput(output.features, pooled))
        return projected


def _routed_projector(
    name: str, source: str, encoders: Mapping[str, nn.Module], projectors: Mapping[str, nn.Module]
) -> nn.Module:
    """``source``'s projector, for ``name``'s inputs (``projector.from``), once ``name``'s encoder is
    seen to give what it reads at the sizes it reads."""
    projector = projectors[source]
    mine, theirs = encoders[name].geometry, encoders[source].geometry
    reads = getattr(projector, "reads", ("features", "pooled"))
    sizes = {"pooled": ("pooled_dim",), "features": ("feature_dim",)}
    for part in reads:
        for size in sizes.get(part, ()):
            if getattr(mine, size) != getattr(theirs, size):
                raise ConfigError(
                    [
                        f"model.modalities.{name}.projector.from: {source}'s projector reads {part} "
                        f"of {size} {getattr(theirs, size)}, and the {name} encoder gives "
                        f"{getattr(mine, size)}; make its embedding {getattr(theirs, size)} wide and "
                        f"bind it to {source} (anymodal bind) first"
                    ]
                )
    return projector


def _build_modality(
    spec: ModalitySpec,
    config: ModalityConfig,
    llm_dim: int,
    registry: Registry,
    shared: dict[Hashable, nn.Module],
) -> tuple[nn.Module, nn.Module]:
    """The modality's encoder (:func:`_shared_encoder`) and its projector, weights loaded."""
    encoder = _shared_encoder(spec, config.encoder, registry, shared)
    projector_spec = registry.get("projector", config.projector.name or spec.default_projector)
    projector = projector_spec.build(encoder.geometry, llm_dim, config.projector.options or None)
    if config.projector.weights:
        load_weights(projector, config.projector.weights, f"{projector_spec.name} projector of {spec.name}")
    return encoder, projector


def scatter_embeddings(
    inputs_embeds: torch.Tensor,
    slots: Sequence[Sequence[Slot]],
    embeddings: Sequence[Sequence[torch.Tensor]],
) -> torch.Tensor:
    """Write projected embeddings into the reserved positions of ``inputs_embeds``.

    inputs_embeds: ``[batch, seq, hidden]``; ``slots[b]`` are row b's slots (``start``, ``length``)
    and ``embeddings[b]`` the matching ``[length, hidden]`` tensors. A count or length mismatch is
    an error that says which row and which slot.
    """
    out = inputs_embeds.clone()
    for row, (row_slots, row_embeddings) in enumerate(zip(slots, embeddings, strict=True)):
        if len(row_slots) != len(row_embeddings):
            raise AnymodalError(
                f"batch row {row} reserves {len(row_slots)} input span(s) but {len(row_embeddings)} "
                "input(s) were encoded",
                hint="every attached input needs exactly one placeholder",
            )
        for slot, embedding in zip(row_slots, row_embeddings, strict=True):
            if embedding.shape[0] != slot.length:
                raise AnymodalError(
                    f"batch row {row}: the {slot.modality} span at position {slot.start} has {slot.length} "
                    f"token(s) but its projector made {embedding.shape[0]}",
                    hint="the processor and the projector disagree; rebuild the prompt for this model",
                )
            out[row, slot.start : slot.start + slot.length] = embedding.to(out.dtype)
    return out
