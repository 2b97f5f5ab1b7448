"""Examples -> padded batches, with each input either preprocessed (to encode now) or cached.

A :class:`Batch` carries ``input_ids``/``labels``/``attention_mask [batch, seq]`` right-padded, the
slots of every row, and the row's inputs in order: :class:`~anymodal.runtime.PreparedInput` when
the frozen encoder runs at every step, :class:`~anymodal.EncoderOutput` when the feature cache has
them. Decoding happens in the dataset so that DataLoader workers do it in parallel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from anymodal.contract.specs import EncoderOutput
from anymodal.runtime.processor import Slot
from anymodal.train.data import MediaRef
from anymodal.train.examples import IGNORE_INDEX, Example


@dataclass
class Batch:
    input_ids: torch.Tensor
    labels: torch.Tensor
    attention_mask: torch.Tensor
    slots: list[list[Slot]]
    #: Every row's inputs in order, ``counts[b]`` of them for row b.
    modalities: list[str]
    inputs: list[Any]
    counts: list[int]

    def to(self, device: torch.device) -> Batch:
        """Move the token tensors (inputs move when they are encoded or projected)."""
        self.input_ids = self.input_ids.to(device)
        self.labels = self.labels.to(device)
        self.attention_mask = self.attention_mask.to(device)
        return self

    @property
    def target_tokens(self) -> int:
        """Tokens the loss is computed on (labels are shifted by one inside the LLM)."""
        return int((self.labels[:, 1:] != IGNORE_INDEX).sum())


class ExampleDataset(Dataset[tuple[Example, list[Any]]]):
    """Examples with their inputs loaded by ``load`` (a preprocessor or the feature cache)."""

    def __init__(self, examples: Sequence[Example], load: Callable[[MediaRef], Any]) -> None:
        self.examples = list(examples)
        self.load = load

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> tuple[Example, list[Any]]:
        example = self.examples[index]
        return example, [self.load(ref) for ref in example.media]


class EpochSampler(Sampler[int]):
    """A fresh permutation per epoch from ``seed + epoch``, so any epoch's order can be replayed
    exactly on resume (accelerate calls :meth:`set_epoch` through its data loader)."""

    def __init__(self, size: int, seed: int, shuffle: bool = True) -> None:
        self.size, self.seed, self.shuffle, self.epoch = size, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.size))
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())


def make_collate(pad_token_id: int) -> Callable[[Sequence[tuple[Example, list[Any]]]], Batch]:
    """A collate function that right-pads ids with ``pad_token_id`` and labels with -100."""

    def collate(items: Sequence[tuple[Example, list[Any]]]) -> Batch:
        length = max(len(example.input_ids) for example, _ in items)
        ids = torch.full((len(items), length), pad_token_id, dtype=torch.long)
        labels = torch.full((len(items), length), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(items), length), dtype=torch.long)
        modalities, inputs, counts = [], [], []
        for row, (example, loaded) in enumerate(items):
            size = len(example.input_ids)
            ids[row, :size] = torch.tensor(example.input_ids)
            labels[row, :size] = torch.tensor(example.labels)
            mask[row, :size] = 1
            modalities += [ref.modality for ref in example.media]
            inputs += loaded
            counts.append(len(loaded))
        slots = [list(example.slots) for example, _ in items]
        return Batch(ids, labels, mask, slots, modalities, inputs, counts)

    return collate


def encoder_outputs(
    inputs: Sequence[Any], encode: Callable[[list[Any]], list[EncoderOutput]]
) -> list[EncoderOutput]:
    """The batch's inputs as encoder outputs: cached ones as they are, the rest through ``encode``."""
    if all(isinstance(item, EncoderOutput) for item in inputs):
        return list(inputs)
    return encode(list(inputs))
