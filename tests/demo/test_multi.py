"""The demo world's two-input records: true to the files they name, answerable only from both,
scored by their own checks, reproducible, and read by the trainer and by ``anymodal eval``."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from anymodal.contract.registry import load_registry
from anymodal.demo.multi import MULTI_KINDS, make_multi_records, multi_kinds
from anymodal.demo.world import MODALITIES, generate_world, judge
from anymodal.eval.data import load_eval_data
from anymodal.train.data import read_records

N, K = 12, 40


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]], dict[str, Any]]:
    root = tmp_path_factory.mktemp("world")
    described = generate_world(root, N, seed=0, multi=K)
    lines = (root / "conversations.jsonl").read_text(encoding="utf-8").splitlines()
    return root, [json.loads(line) for line in lines], described


def multi(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [record for record in records if "sources" in record["meta"]]


def by_id(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {record["id"]: record for record in records}


def test_every_kind_gets_its_count_after_the_single_input_records(world):
    _, records, described = world
    assert [record["meta"].get("sources") is None for record in records] == [True] * (N * 6) + [False] * (
        K * 6
    )
    kinds = Counter((r["meta"]["modality"], r["meta"]["turns"][0]["kind"]) for r in multi(records))
    assert kinds == {(kind.label, kind.name): K for kind in MULTI_KINDS}
    assert described["counts"]["multi"] == {f"{kind.label} {kind.name}": K for kind in MULTI_KINDS}
    assert described["counts"]["files"] == N * 6 and described["counts"]["records"] == N * 6 + K * 6


def test_placeholders_come_first_one_per_input_in_the_files_order(world):
    _, records, _ = world
    for record in multi(records):
        first = record["conversations"][0]["value"]
        inputs = record["meta"]["modality"].split("+")
        assert first.startswith("".join(f"<{modality}>\n" for modality in inputs))
        assert first.count("<") == len(inputs) == len(record["meta"]["sources"])
        for modality, count in Counter(inputs).items():
            assert isinstance(record[modality], str if count == 1 else list)
            assert count == 1 or len(record[modality]) == count


def test_the_answers_are_true_to_the_files_they_name(world):
    _, records, _ = world
    single = by_id(records)
    for record in multi(records):
        sources = [single[source] for source in record["meta"]["sources"]]
        inputs = record["meta"]["modality"].split("+")
        written = [path for modality in dict.fromkeys(inputs) for path in np.atleast_1d(record[modality])]
        assert written == [source[modality] for source, modality in zip(sources, inputs, strict=True)]
        attributes = [source["meta"]["attributes"] for source in sources]
        a, b = attributes[:2]
        kind, question = record["meta"]["turns"][0]["kind"], record["conversations"][0]["value"]
        reply = record["conversations"][1]["value"]
        if kind == "which_colour":
            colours = [attribute["colour"] for attribute in attributes]
            assert len(set(colours)) == len(colours)  # chosen so that one answer is right
            (target,) = [number for number, colour in enumerate(colours) if f" {colour} " in question]
            ordinal = ("first", "second", "third")[target]
            listed = " and ".join([", ".join(colours[:-1]), colours[-1]])
            assert reply == f"The images are {listed}, so it is in the {ordinal} image."
        elif kind == "same_shape":
            verdict = "yes, the same shape" if a["shape"] == b["shape"] else "no, they differ"
            assert reply == f"The first shows a {a['shape']} and the second a {b['shape']}: {verdict}."
        elif kind == "in_context":
            given = a["shape"] if "What shape" in question else a["colour"]
            assert given in question.split(".")[0]
            assert (b["shape"] if "What shape" in question else b["colour"]) in reply
        elif kind == "together":
            said = {"steady": "stays steady", "beeping": "beeps", "rising": "rises", "falling": "falls"}
            moves = {"left": "moves to the left", "right": "moves to the right", "still": "stays still"}
            motion = moves.get(a["motion"], f"moves {a['motion']}")
            assert reply.rsplit(": ", 1)[0] == f"The sound {said[b['pattern']]}, and the shape {motion}"
        else:
            assert reply == (
                f"It is {'near the camera' if a['distance'] == 'near' else 'far from the camera'}, "
                f"and it is {b['temperature']}."
            )


def test_yes_and_no_are_balanced_where_a_kind_asks_yes_or_no(world):
    _, records, _ = world
    for name in ("same_shape", "together"):
        verdicts = Counter(
            r["conversations"][1]["value"].rsplit(": ", 1)[1].split(",")[0].rstrip(".")
            for r in multi(records)
            if r["meta"]["turns"][0]["kind"] == name
        )
        assert set(verdicts) == {"yes", "no"} and min(verdicts.values()) >= K // 4, (name, verdicts)


def test_reference_answers_pass_their_checks_and_a_swapped_answer_fails(world):
    _, records, _ = world
    mine = multi(records)
    for record in mine:
        assert judge(record["conversations"][1]["value"], record["meta"]["turns"][0]["checks"]), record["id"]
    # Another record's answer of the same kind fails wherever the two answers differ in substance.
    failed = 0
    for record, other in itertools.pairwise(mine):
        if record["meta"]["turns"][0]["kind"] != other["meta"]["turns"][0]["kind"]:
            continue
        if record["conversations"][1]["value"] != other["conversations"][1]["value"]:
            failed += not judge(other["conversations"][1]["value"], record["meta"]["turns"][0]["checks"])
    assert failed > len(mine) // 3


def test_the_trainer_and_eval_read_every_record(world):
    root, records, _ = world
    registry = load_registry()
    placeholders = {modality: registry.modalities[modality].placeholder for modality in MODALITIES}
    valid, report = read_records(
        root / "conversations.jsonl", placeholders=placeholders, ignore_keys=("meta",)
    )
    assert report.problems == [] and len(valid) == len(records)
    data = load_eval_data(root / "conversations.jsonl", placeholders)
    labels = Counter(record.modality for record in data.records)
    assert labels["image+image"] == 3 * K and labels["image+image+image"] == K
    assert labels["video+audio"] == K and labels["depth+thermal"] == K
    item = next(record for record in data.records if record.modality == "video+audio")
    assert [modality for modality, _ in item.media] == ["video", "audio"]
    assert "<" not in item.items[0].question  # eval attaches the files before the question


def test_records_are_reproducible_and_independent_of_the_count(world):
    _, records, _ = world
    single = [r for r in records if "sources" not in r["meta"]]
    assert make_multi_records(single, K, 0, MODALITIES) == multi(records)
    fewer = make_multi_records(single, 5, 0, MODALITIES)
    assert fewer == [r for r in multi(records) if int(r["id"].rsplit("-", 1)[1]) < 5]
    assert make_multi_records(single, 5, 1, MODALITIES) != fewer


def test_naming_kinds_keeps_their_records_as_they_are(world):
    _, records, _ = world
    single = [r for r in records if "sources" not in r["meta"]]
    named = make_multi_records(single, K, 0, MODALITIES, ["which_colour", "object"])
    assert named == [r for r in multi(records) if r["meta"]["turns"][0]["kind"] in ("which_colour", "object")]
    assert len(named) == 3 * K  # two- and three-image which_colour, depth+thermal object
    assert make_multi_records(single, K, 0, MODALITIES, []) == []


def test_only_kinds_whose_modalities_are_in_the_world(tmp_path):
    kinds = multi_kinds(["image", "audio"])
    assert [f"{kind.label} {kind.name}" for kind in kinds] == [
        "image+image which_colour",
        "image+image+image which_colour",
        "image+image same_shape",
        "image+image in_context",
    ]
    assert multi_kinds(["audio"]) == []
    described = generate_world(tmp_path, 4, seed=0, modalities=["depth", "thermal"], multi=3)
    assert described["counts"]["multi"] == {"depth+thermal object": 3}


def test_no_multi_leaves_the_world_as_it_was(tmp_path, world):
    described = generate_world(tmp_path, N, seed=0)
    _, records, _ = world
    assert "multi" not in described["counts"]
    lines = (tmp_path / "conversations.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == records[: N * 6]
    with pytest.raises(Exception, match="two-input records per kind must be 0 or more"):
        generate_world(tmp_path / "bad", N, seed=0, multi=-1)


def test_the_generators_differ_from_the_single_input_ones() -> None:
    # [seed, 1000, kind, i] and [seed, modality < 6, i] never name the same stream.
    assert not np.array_equal(
        np.random.default_rng([0, 1000, 0, 0]).random(4), np.random.default_rng([0, 0, 0]).random(4)
    )
