"""What plugins register: specs for modalities, encoders, projectors and templates, and the data
that passes between the runtime and an LLM bridge (messages, generation and LoRA settings).
The bridge itself and its spec are in :mod:`anymodal.contract.bridge`.

This module must stay free of heavy imports (torch, transformers): importing a plugin imports it,
and importing a plugin must be cheap. Anything heavy happens inside the callables a spec carries.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:
    import torch

#: Version of the plugin contract this anymodal speaks. A plugin module declares the version it
#: was built for as a module attribute ``ANYMODAL_CONTRACT``; a mismatch is refused at load time.
CONTRACT_VERSION = 1


class EncoderOutput(NamedTuple):
    """What an encoder returns for a batch.

    features: ``[batch, tokens, feature_dim]``, the trunk's token sequence.
    pooled:   ``[batch, pooled_dim]``, one vector per input (ImageBind's post-processed embedding).
    """

    features: torch.Tensor
    pooled: torch.Tensor


@dataclass(frozen=True)
class EncoderGeometry:
    """The shapes an encoder produces, which a projector is built against."""

    feature_dim: int
    num_tokens: int
    pooled_dim: int


@dataclass(frozen=True)
class TensorLayout:
    """The shape and dtype of one input tensor, without its batch dimension: what a modality's
    preprocessing emits (:attr:`ModalitySpec.emits`) and what an encoder takes
    (:attr:`EncoderSpec.takes`), so that the two can be checked against each other before any
    file is read (:func:`anymodal.layout_mismatch`).

    dims:  each dimension's size; None where any size goes (a recording's length, a cloud's points).
    dtype: torch's name of the element type, without ``torch.``: "float32", "int64".
    names: one per dimension, or none; they only make messages readable: ``[leads=12, samples=*]``.
    """

    dims: tuple[int | None, ...]
    dtype: str = "float32"
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "dims", tuple(self.dims))
        object.__setattr__(self, "names", tuple(self.names))
        if not all(
            d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= 0) for d in self.dims
        ):
            raise ValueError(f"a layout's dims are sizes (whole numbers) or None, got {self.dims}")
        if self.names and len(self.names) != len(self.dims):
            raise ValueError(f"a layout names all of its {len(self.dims)} dims or none, got {self.names}")
        if not self.dtype or self.dtype.startswith("torch."):
            raise ValueError(f"a layout's dtype is torch's name without 'torch.', got {self.dtype!r}")

    def __str__(self) -> str:
        sizes = ["*" if d is None else str(d) for d in self.dims]
        named = [f"{n}={s}" for n, s in zip(self.names, sizes, strict=True)] if self.names else sizes
        return f"[{', '.join(named)}] {self.dtype}"


@dataclass(frozen=True)
class ModalitySpec:
    """One input modality: how a file becomes a tensor and which encoder and projector it uses.

    loader(path) validates and decodes a file and raises :class:`anymodal.InputError` naming the
    file when it cannot. preprocess(decoded, **options) turns the decoded value into one tensor
    without a batch dimension; options come from the config key ``modalities.<name>.preprocess``.
    emits(options), when given, is the :class:`TensorLayout` of that tensor for those options
    (the config's, with the defaults of ``preprocess``'s signature filled in).
    """

    name: str
    loader: Callable[[Path], Any]
    preprocess: Callable[..., Any]
    file_kinds: tuple[str, ...]
    default_encoder: str
    default_projector: str = "linear"
    placeholder: str = ""
    flag: str = ""
    description: str = ""
    emits: Callable[[Mapping[str, Any]], TensorLayout] | None = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name != self.name.lower():
            raise ValueError(f"modality name {self.name!r} must be a lower-case identifier")
        if not self.placeholder:
            object.__setattr__(self, "placeholder", f"<{self.name}>")
        if not self.flag:
            object.__setattr__(self, "flag", f"--{self.name.replace('_', '-')}")
        kinds = tuple(k.lower() if k.startswith(".") else f".{k.lower()}" for k in self.file_kinds)
        object.__setattr__(self, "file_kinds", kinds)


@dataclass(frozen=True)
class EncoderSpec:
    """An encoder that turns a preprocessed batch into :class:`EncoderOutput`.

    build(modality, options) returns a ``torch.nn.Module`` whose ``forward(batch)`` returns an
    :class:`EncoderOutput` and whose ``geometry`` attribute is an :class:`EncoderGeometry`.
    ``options`` is an instance of the ``options`` dataclass (validated from the config key
    ``modalities.<name>.encoder.options``), or an empty mapping when the spec has none.
    """

    name: str
    build: Callable[[str, Any], Any]
    options: type | None = None
    modalities: tuple[str, ...] = ()  # empty means "any modality"
    description: str = ""
    #: share_key(modality, options) -> a hashable: modalities of one model whose keys (and weights
    #: files) are equal use one encoder instance, e.g. ImageBind's vision trunk for image and video.
    #: None: every modality builds its own.
    share_key: Callable[[str, Any], Hashable] | None = None
    #: True when ``build`` works on torch's meta device and the module's ``load_weights(path)``
    #: then materialises every tensor (``load_state_dict(..., assign=True)``): with a weights
    #: file, the encoder is built without the random initialisation its weights would replace.
    meta_load: bool = False
    #: takes(modality, options) -> the :class:`TensorLayout` of one input (no batch dimension)
    #: that the encoder built for them reads, or None where it declares none (an encoder that
    #: reads several layouts for a modality). None: it declares no layout for any modality.
    takes: Callable[[str, Any], TensorLayout | None] | None = None


@dataclass(frozen=True)
class ProjectorSpec:
    """A projector from encoder outputs into the LLM's token-embedding space.

    build(geometry, llm_dim, options) returns a ``torch.nn.Module`` with an int ``num_tokens``
    attribute and ``forward(EncoderOutput) -> Tensor [batch, num_tokens, llm_dim]``. It may declare
    ``reads``, a tuple naming the parts of the EncoderOutput its forward reads (``"features"``,
    ``"pooled"``): training's feature cache (``train.feature_cache``) then stores only those
    (a pooled vector instead of every token for a linear projector on pooled features). Without
    it, every part is stored.
    """

    name: str
    build: Callable[[EncoderGeometry, int, Any], Any]
    options: type | None = None
    description: str = ""


Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    """One chat message; ``content`` may hold modality placeholders such as ``<image>``."""

    role: Role
    content: str


@dataclass(frozen=True)
class TemplateSpec:
    """A named conversation template.

    render(messages, add_generation_prompt) returns the prompt text, placeholders left in place.
    add_bos: prepend the tokenizer's BOS id to the token ids. stop: strings that end a reply.
    span: the (open, close) text around every input's tokens; None keeps the runtime default.

    How a generated reply ends, and what of it the history keeps (the defaults: at the first
    ``stop`` string or EOS, the reply being the text before it):

    stop_tokens: vocabulary entries, spelled as the tokenizer's vocabulary spells them (LLaMA's
    ``"##"`` is id 2277), whose id ends the reply as soon as it is generated: a stopping criterion
    on token ids, as PandaGPT's. stop_on_text: whether ``stop`` strings end generation too; False
    leaves them only marking where a reply ends in the rendered text (the end-of-turn text that
    training targets include). trim_tokens: None, or n: the reply is then the generated ids, the
    one that ended it included (a stop token, EOS, or the max_new_tokens-th id), less the last n,
    as PandaGPT's ``decode(ids[:-2])``; the history keeps exactly that text and the template
    writes it back as it renders any assistant message.
    """

    name: str
    render: Callable[[Sequence[Message], bool], str]
    add_bos: bool = True
    stop: tuple[str, ...] = ()
    span: tuple[str, str] | None = None
    description: str = ""
    stop_tokens: tuple[str, ...] = ()
    stop_on_text: bool = True
    trim_tokens: int | None = None


@dataclass(frozen=True)
class LLMSettings:
    """What a bridge needs to load an LLM: a local directory or hub id, and an optional adapter."""

    path: str
    adapter: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding settings. ``temperature == 0`` or ``do_sample=False`` means greedy.

    ``stop``: strings that end the reply (cut before them). ``stop_token_ids``: ids that end it
    once generated, as EOS does. ``trim_tokens``: None, the reply being the ids before the one
    that ended it; or n, the reply being every generated id, the ending one included, less the
    last n (see :class:`TemplateSpec`).
    """

    max_new_tokens: int = 256
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    stop_token_ids: tuple[int, ...] = ()
    trim_tokens: int | None = None

    @property
    def greedy(self) -> bool:
        return not self.do_sample or self.temperature <= 0.0


@dataclass(frozen=True)
class LoraSettings:
    """LoRA on the LLM; defaults are PandaGPT's (r=32, alpha=32, dropout 0.1 on q/k/v/o)."""

    r: int = 32
    alpha: int = 32
    dropout: float = 0.1
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")


TextStream = Iterator[str]
