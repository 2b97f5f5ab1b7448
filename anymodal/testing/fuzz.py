"""Fuzzing a modality's loader and preprocessor: every damaged file is an anymodal error, never a crash.

A loader is the first code to touch a stranger's bytes, so it must turn anything (random bytes,
a valid file cut short, bit flips, header fields that lie) into an :class:`anymodal.AnymodalError`
naming the file, and it must do so quickly and in bounded memory. :func:`damaged_files` is a
Hypothesis strategy of such damage derived from one valid file; :func:`check_damaged_file` runs
what the runtime runs on one of them (the input checks, the loader, the preprocessor) and fails
on any other exception, on a case that takes longer than its deadline, and on one whose peak
memory rises by more than a bound. :func:`fuzz_modality` runs both under a fixed seed and a
bounded number of examples, so CI stays deterministic; the conformance suite calls it for every
modality of every plugin.

Hypothesis is a test dependency: it is imported when this module is, never by ``anymodal``.
"""

from __future__ import annotations

import resource
import signal
import sys
import tempfile
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from anymodal.contract.errors import AnymodalError
from anymodal.contract.specs import ModalitySpec
from anymodal.files.inputs import DEFAULT_MAX_INPUT_MB, check_input_file

#: The seed every fuzz run starts from: a failure found in CI is found again on any machine.
FUZZ_SEED = 20261206
#: Examples per modality by default; each is one file written, checked, decoded and preprocessed.
FUZZ_EXAMPLES = 60
#: Longest one damaged file may take before it counts as a hang, in seconds.
CASE_DEADLINE_S = 10.0
#: Most a damaged file may raise the process's peak memory by, in MiB.
CASE_MEMORY_MIB = 512

#: Values a lying header field takes: zero, one, and the ends of the signed and unsigned ranges.
_ABSURD_FIELDS = (0, 1, 0x7F, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


@dataclass(frozen=True)
class Damage:
    """One damaged file: its bytes, and what was done to the valid file (for the failure message)."""

    data: bytes
    how: str


def damaged_files(valid: bytes, header: int = 64) -> st.SearchStrategy[Damage]:
    """Random bytes, ``valid`` cut at any point, with bits flipped, or with a 1-, 2- or 4-byte field
    in its first ``header`` bytes overwritten by an absurd value (little- or big-endian)."""
    if not valid:
        raise ValueError("damaged_files needs the bytes of a valid, non-empty file")
    size = len(valid)
    random_bytes = st.binary(min_size=1, max_size=4096).map(lambda data: Damage(data, "random bytes"))
    truncated = st.integers(min_value=1, max_value=max(size - 1, 1)).map(
        lambda cut: Damage(valid[:cut], f"cut to {cut} of {size} bytes")
    )
    # Unique positions: flipping one bit twice would give the valid file back.
    places = st.tuples(st.integers(0, size - 1), st.integers(0, 7))
    flips = st.lists(places, min_size=1, max_size=16, unique=True).map(
        lambda where: Damage(_flip(valid, where), f"bits flipped at {sorted(where)}")
    )
    fields = st.tuples(
        st.integers(0, max(min(header, size) - 1, 0)),
        st.sampled_from((1, 2, 4)),
        st.sampled_from(_ABSURD_FIELDS),
        st.sampled_from(("little", "big")),
    ).map(lambda field: _overwrite(valid, *field))
    return st.one_of(random_bytes, truncated, flips, fields)


def _flip(valid: bytes, where: list[tuple[int, int]]) -> bytes:
    data = bytearray(valid)
    for offset, bit in where:
        data[offset] ^= 1 << bit
    return bytes(data)


def _overwrite(valid: bytes, offset: int, width: int, value: int, order: str) -> Damage:
    field = (value & ((1 << (8 * width)) - 1)).to_bytes(width, order)  # type: ignore[arg-type]
    data = bytearray(valid)
    data[offset : offset + width] = field[: max(len(data) - offset, 0)]
    return Damage(bytes(data), f"{width}-byte field at {offset} set to {value:#x} ({order}-endian)")


def check_damaged_file(
    spec: ModalitySpec,
    damage: Damage,
    suffix: str,
    directory: Path,
    *,
    deadline_s: float = CASE_DEADLINE_S,
    memory_mib: int = CASE_MEMORY_MIB,
) -> Any:
    """Write ``damage`` as a ``suffix`` file, then check, decode and preprocess it as the runtime
    does. An :class:`AnymodalError` is the expected outcome and is returned; a file that still
    decodes returns its tensor. Anything else raises AssertionError saying what was done to the
    file: another exception, a case over ``deadline_s``, or peak memory up by over ``memory_mib``."""
    handle, name = tempfile.mkstemp(suffix=suffix, dir=directory)
    path = Path(name)
    try:
        with open(handle, "wb") as stream:
            stream.write(damage.data)
        with _memory_watch() as grown:
            result = _run_case(spec, damage, suffix, path, deadline_s)
        assert grown() <= memory_mib, (
            f"{spec.name}: a {suffix} file ({damage.how}) raised memory by {grown():.0f} MiB"
        )
        return result
    finally:
        path.unlink(missing_ok=True)


def _run_case(spec: ModalitySpec, damage: Damage, suffix: str, path: Path, deadline_s: float) -> Any:
    try:
        with _deadline(deadline_s):
            file = check_input_file(path, spec.file_kinds, modality=spec.name, max_mb=DEFAULT_MAX_INPUT_MB)
            result: Any = spec.preprocess(spec.loader(file))
    except AnymodalError as error:
        assert path.name in str(error), (
            f"{spec.name}: the error for a {suffix} file ({damage.how}) does not name the file: {error}"
        )
        result = error
    except _Hang:
        raise AssertionError(
            f"{spec.name}: a {suffix} file ({damage.how}) took over {deadline_s:g} s"
        ) from None
    except Exception as error:
        raise AssertionError(
            f"{spec.name}: a {suffix} file ({damage.how}) raised {type(error).__name__}: {error} "
            "instead of an anymodal error naming the file"
        ) from error
    return result


def fuzz_modality(
    spec: ModalitySpec,
    valid_file: Path,
    *,
    examples: int = FUZZ_EXAMPLES,
    header: int = 64,
) -> None:
    """Run :func:`check_damaged_file` on ``examples`` damaged versions of ``valid_file`` (seeded
    with :data:`FUZZ_SEED`, no example database), each written with ``valid_file``'s suffix, after
    decoding ``valid_file`` itself once. A decoder that aborts the process (a C library's own
    abort) ends the test run too: run such a fuzz test in a subprocess of its own."""
    valid = Path(valid_file).read_bytes()
    suffix = Path(valid_file).suffix
    # The valid file once, without a deadline: first-time imports (torch, a decoder library) can take
    # longer than a case may, and an import cut short by the deadline would break every later case.
    spec.preprocess(spec.loader(check_input_file(valid_file, spec.file_kinds, modality=spec.name)))

    @seed(FUZZ_SEED)
    @settings(
        max_examples=examples,
        deadline=None,  # the per-case deadline above also catches a hang, which Hypothesis cannot
        database=None,
        derandomize=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=False,
    )
    @given(damaged_files(valid, header))
    def run(damage: Damage) -> None:
        with tempfile.TemporaryDirectory(prefix="anymodal-fuzz-") as directory:
            check_damaged_file(spec, damage, suffix, Path(directory))

    run()


class _Hang(Exception):
    """A case ran past its deadline."""


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise :class:`_Hang` in this (the main) thread after ``seconds``; elsewhere, no deadline.
    A decoder stuck in C code is interrupted when it next returns to Python."""
    if sys.platform == "win32" or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise _Hang

    try:
        previous = signal.signal(signal.SIGALRM, expire)
    except ValueError:  # not the main thread
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def _memory_watch() -> Iterator[Callable[[], float]]:
    """How much a block raised memory, in MiB: the larger of the peak of Python and numpy
    allocations (tracemalloc) and the rise of the process's peak resident memory (which also sees
    allocations in C libraries, once they pass every earlier peak)."""
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    traced_before, _ = tracemalloc.get_traced_memory()
    rss_before = _peak_rss_mib()
    grown = 0.0
    try:
        yield lambda: grown
    finally:
        _, traced_peak = tracemalloc.get_traced_memory()
        grown = max((traced_peak - traced_before) / 2**20, _peak_rss_mib() - rss_before)
        if not tracing:
            tracemalloc.stop()


def _peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10
