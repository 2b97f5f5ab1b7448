"""anymodal.testing.fuzz catches what it promises to: foreign exceptions, hangs, memory blow-ups,
errors that do not name the file; and lets a loader's own InputError through."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, seed, settings

import anymodal
from anymodal.testing.fuzz import Damage, check_damaged_file, damaged_files, fuzz_modality

VALID = b"GOOD" + bytes(range(60))


def spec_with(loader: Any) -> anymodal.ModalitySpec:
    return anymodal.ModalitySpec(
        name="blob",
        loader=loader,
        preprocess=lambda decoded: decoded,
        file_kinds=("bin",),
        default_encoder="x",
    )


def strict_loader(path: Path) -> bytes:
    data = path.read_bytes()
    if data != VALID:
        raise anymodal.InputError(f"blob file is damaged: {path}")
    return data


def test_an_input_error_naming_the_file_is_the_expected_outcome(tmp_path: Path):
    result = check_damaged_file(spec_with(strict_loader), Damage(b"bad", "three bytes"), ".bin", tmp_path)
    assert isinstance(result, anymodal.InputError)
    assert list(tmp_path.iterdir()) == []  # the damaged file is removed


def test_a_foreign_exception_fails_and_says_what_was_done(tmp_path: Path):
    def crashing(path: Path) -> bytes:
        raise ValueError("index out of range")

    with pytest.raises(AssertionError, match=r"\.bin file \(cut to 3 bytes\) raised ValueError: index"):
        check_damaged_file(spec_with(crashing), Damage(b"bad", "cut to 3 bytes"), ".bin", tmp_path)


def test_an_error_that_does_not_name_the_file_fails(tmp_path: Path):
    def vague(path: Path) -> bytes:
        raise anymodal.InputError("something is wrong")

    with pytest.raises(AssertionError, match="does not name the file"):
        check_damaged_file(spec_with(vague), Damage(b"bad", "bad"), ".bin", tmp_path)


def test_a_hang_fails_at_the_deadline(tmp_path: Path):
    def slow(path: Path) -> bytes:
        time.sleep(5)
        return b""

    started = time.perf_counter()
    with pytest.raises(AssertionError, match=r"took over 0.2 s"):
        check_damaged_file(spec_with(slow), Damage(b"bad", "bad"), ".bin", tmp_path, deadline_s=0.2)
    assert time.perf_counter() - started < 2


def test_a_memory_blow_up_fails(tmp_path: Path):
    import numpy as np

    def greedy(path: Path) -> Any:
        block = np.ones(96 * 2**20 // 8)  # 96 MiB, touched
        return float(block.sum())

    with pytest.raises(AssertionError, match=r"raised memory by 9\d MiB"):
        check_damaged_file(spec_with(greedy), Damage(b"bad", "bad"), ".bin", tmp_path, memory_mib=32)


@seed(1)
@settings(max_examples=200, database=None)
@given(damaged_files(VALID, header=8))
def test_damage_is_always_bytes_that_differ_from_the_valid_file_or_are_cut(damage: Damage):
    assert damage.data and damage.how
    assert damage.data != VALID or "set to" in damage.how  # an overwritten field may hold its own value


def test_fuzz_modality_runs_a_seeded_bounded_campaign(tmp_path: Path):
    seen: list[bytes] = []

    def recording(path: Path) -> bytes:
        seen.append(path.read_bytes())
        return strict_loader(path)

    valid = tmp_path / "valid.bin"
    valid.write_bytes(VALID)
    fuzz_modality(spec_with(recording), valid, examples=15)
    first = list(seen)
    seen.clear()
    fuzz_modality(spec_with(recording), valid, examples=15)
    assert 1 < len(first) <= 16 and seen == first  # the valid file, then the same cases in the same order
