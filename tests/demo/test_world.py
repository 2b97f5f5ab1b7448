"""The synthetic demo world: reproducible, balanced, readable by the trainer and the plugins, and true.

"True" means two things. The language: every reference answer passes its own checks and fails
them for any other class, and yes/no answers start with the right word. The media: what a file
shows is what its record says -- a red shape's pixels are red, a shape on the left is on the left,
a near object is near, a high tone is high, a spinning IMU turns -- measured on the written files.
"""

from __future__ import annotations

import itertools
import json
import wave
from collections import Counter
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from anymodal.cli import main
from anymodal.contract.registry import load_registry
from anymodal.demo.examples import EXAMPLES, write_examples
from anymodal.demo.language import OPEN_QUESTIONS, YES_NO_QUESTIONS, checks, expect_words, questions
from anymodal.demo.motion import render_imu
from anymodal.demo.palette import COLOUR_RANGES, prototype
from anymodal.demo.pictures import render_depth, render_image, render_thermal
from anymodal.demo.shapes import Placement, coverage
from anymodal.demo.sound import SAMPLE_RATE, render_audio
from anymodal.demo.video import render_video
from anymodal.demo.world import ATTRIBUTES, KINDS, MODALITIES, answer, generate_world, judge
from anymodal.eval.scoring import reply_words
from anymodal.train.data import read_records

N = 12


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """A 12-file-per-modality world, seed 0, and its records."""
    root = tmp_path_factory.mktemp("world")
    generate_world(root, N, seed=0)
    lines = (root / "conversations.jsonl").read_text(encoding="utf-8").splitlines()
    return root, [json.loads(line) for line in lines]


def files_of(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()
    }


# --- reproducibility and balance -----------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_world(tmp_path, world):
    first, second, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_world(first, 3, seed=0)
    generate_world(second, 3, seed=0, workers=2)  # a process pool writes the same bytes
    generate_world(other, 3, seed=1)
    written = files_of(first)
    assert len(written) == 3 * len(MODALITIES) + 2
    assert any(name.endswith(".mp4") for name in written)
    assert written == files_of(second)
    changed = files_of(other)
    assert written.keys() == changed.keys()
    assert all(written[name] != changed[name] for name in written if not name.endswith(".json"))
    # a file does not depend on how many were asked for: the small world is a prefix of the big one
    big = files_of(world[0])
    assert all(big[name] == data for name, data in written.items() if "/" in name)


def test_a_video_encodes_to_the_same_bytes_every_time(tmp_path):
    """With B-frames or macroblock-tree rate control, x264 gave many of these clips different bytes
    from call to call, depending on what the process had done in between."""
    motions = ATTRIBUTES["video"]["motion"]
    written: dict[int, set[bytes]] = {}
    for repeat, number in itertools.product(range(3), range(5)):
        attributes = {"shape": ("star", "square")[repeat % 2], "colour": "yellow", "motion": motions[number]}
        if repeat:  # something else in between, so the encoder's memory is not as it was
            render_video(attributes, np.random.default_rng([repeat, number]), tmp_path / "other.mp4")
        path = tmp_path / f"{number}.mp4"
        render_video({**attributes, "shape": "star"}, np.random.default_rng(number), path)
        written.setdefault(number, set()).add(path.read_bytes())
    assert all(len(versions) == 1 for versions in written.values())


def test_twelve_files_show_every_class_of_every_attribute(world):
    _, records = world
    for modality in MODALITIES:
        mine = [record["meta"]["attributes"] for record in records if record["meta"]["modality"] == modality]
        assert len(mine) == N
        for attribute, classes in ATTRIBUTES[modality].items():
            seen = Counter(attributes[attribute] for attributes in mine)
            assert set(seen) == set(classes), (modality, attribute, seen)
            assert max(seen.values()) - min(seen.values()) <= 2


def test_world_json_describes_the_world(world):
    root, records = world
    described = json.loads((root / "world.json").read_text())
    assert described["seed"] == 0 and described["n"] == N
    assert described["modalities"] == list(MODALITIES)
    assert described["attributes"]["image"]["position"] == list(ATTRIBUTES["image"]["position"])
    assert described["counts"]["records"] == len(records) == N * len(MODALITIES)
    assert described["counts"]["turns"] == sum(len(record["meta"]["turns"]) for record in records)


# --- records: the trainer's reader, conversation shape, plugins ------------------------------------


def test_the_trainer_reads_every_record(world):
    root, records = world
    registry = load_registry()
    placeholders = {modality: registry.modalities[modality].placeholder for modality in MODALITIES}
    valid, report = read_records(
        root / "conversations.jsonl", placeholders=placeholders, ignore_keys=("meta",)
    )
    assert report.problems == []
    assert len(valid) == len(records)


def test_conversations_have_the_agreed_shape(world):
    _, records = world
    placements: Counter[bool] = Counter()
    for record in records:
        modality = record["meta"]["modality"]
        index = int(record["id"].split("-")[1])
        assert record["id"] == f"{modality}-{index:05d}"
        assert record[modality] == f"{modality}/{index:05d}.{Path(record[modality]).suffix[1:]}"
        messages, turns = record["conversations"], record["meta"]["turns"]
        assert [m["from"] for m in messages] == ["human", "gpt"] * len(turns)
        assert 1 <= len(turns) <= 3
        assert len({turn["kind"] for turn in turns}) == len(turns)
        tag = f"<{modality}>"
        first = messages[0]["value"]
        assert first.startswith(tag + "\n") or first.endswith("\n" + tag)
        placements[first.startswith(tag)] += 1
        assert all(tag not in message["value"] for message in messages[1:])
        for question, reply, turn in zip(messages[::2], messages[1::2], turns, strict=True):
            assert judge(reply["value"], turn["checks"]), (question, reply, turn)
            kind = turn["kind"]
            assert reply["value"] == answer(modality, kind, record["meta"]["attributes"], question["value"])
            if "yes_no" in turn:
                assert reply["value"].startswith({"yes": "Yes, ", "no": "No, "}[turn["yes_no"]])
    assert placements[True] > placements[False] > 0


EXPECTED_SHAPES = {
    "image": (3, 224, 224),
    "video": (15, 3, 2, 224, 224),
    "audio": (3, 1, 128, 204),
    "depth": (1, 224, 224),
    "thermal": (1, 224, 224),
    "imu": (6, 2000),
}


def test_every_file_loads_and_preprocesses_through_its_plugin(world):
    root, records = world
    registry = load_registry()
    for record in records:
        modality = record["meta"]["modality"]
        if modality == "video" and int(record["id"][-5:]) >= 3:
            continue  # three videos tell as much as twelve, at a quarter of the time
        path = root / record[modality]
        spec = registry.modalities[modality]
        tensor = spec.preprocess(spec.loader(path))
        assert tuple(tensor.shape) == EXPECTED_SHAPES[modality], path
        assert bool(tensor.isfinite().all())
        check_raw_file(modality, path)


def check_raw_file(modality: str, path: Path) -> None:
    """The file itself is of the agreed kind: RGB png, 16-bit depth, 8-bit thermal, ..."""
    if modality in ("image", "depth", "thermal"):
        with Image.open(path) as image:
            assert image.mode == {"image": "RGB", "depth": "I;16", "thermal": "L"}[modality]
            side = min(image.size)
            assert (
                (64 <= side <= 320)
                if modality == "image"
                else (96 <= side <= 160 and image.width == image.height)
            )
            assert max(image.size) <= side * 4 / 3 + 1
    elif modality == "imu":
        array = np.load(path)
        assert array.dtype == np.float32 and array.shape == (6, 2000)
    elif modality == "audio":
        with wave.open(str(path)) as file:
            assert (file.getframerate(), file.getnchannels(), file.getsampwidth()) == (16000, 1, 2)
            assert 2.0 <= file.getnframes() / 16000 <= 3.0
    else:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 96, 96)
            assert stream.codec_context.pix_fmt == "yuv420p"
            assert stream.average_rate == 8
            assert sum(1 for _ in container.decode(video=0)) == 24


# --- language -------------------------------------------------------------------------------------


def every_file(modality: str) -> list[dict[str, str]]:
    attributes = ATTRIBUTES[modality]
    return [dict(zip(attributes, combo, strict=True)) for combo in itertools.product(*attributes.values())]


@pytest.mark.parametrize("modality", MODALITIES)
def test_reference_answers_pass_their_checks_and_fail_for_any_other_class(modality):
    for kind in KINDS[modality]:
        assert 3 <= len(OPEN_QUESTIONS[modality][kind]) + (kind in YES_NO_QUESTIONS[modality]) <= 5
        for attributes in every_file(modality):
            wanted = checks(modality, kind, attributes)
            assert set(wanted) == (set(ATTRIBUTES[modality]) if kind == "describe" else {kind})
            for question in questions(modality, kind):
                reply = answer(modality, kind, attributes, f"<{modality}>\n{question}")
                assert reply == answer(modality, kind, attributes, question)
                assert judge(reply, wanted), (modality, kind, attributes, question, reply)
                asked = next(
                    (c for c, q in YES_NO_QUESTIONS[modality].get(kind, {}).items() if q == question), None
                )
                if asked is None:
                    assert not reply.startswith(("Yes", "No"))
                else:
                    assert reply.startswith("Yes, " if asked == attributes[kind] else "No, "), (
                        question,
                        reply,
                    )
                for attribute in wanted:
                    for other in ATTRIBUTES[modality][attribute]:
                        if other != attributes[attribute]:
                            swapped = checks(modality, kind, {**attributes, attribute: other})
                            assert not judge(reply, swapped), (reply, attribute, other)


@pytest.mark.parametrize("modality", MODALITIES)
def test_attribute_words_never_collide_within_a_modality(modality):
    owner: dict[str, str] = {}
    for attribute, classes in ATTRIBUTES[modality].items():
        for cls in classes:
            for word in expect_words(modality, attribute, cls):
                assert owner.setdefault(word, attribute) == attribute, (word, attribute, owner[word])
                assert word == word.lower() and word.isalpha()
    # no answer, about any file, holds a word of a class it is not about
    for attributes in every_file(modality):
        for kind in KINDS[modality]:
            named = set(reply_words(answer(modality, kind, attributes))) & set(owner)
            true_words = {w for a, c in attributes.items() for w in expect_words(modality, a, c)}
            assert named <= true_words, (kind, attributes, named - true_words)


def test_judge_reads_whole_lowercase_words():
    wanted = {"colour": {"expect": ["red"], "reject": ["green", "blue", "yellow"]}}
    assert judge("It's RED!", wanted)
    assert judge("a red one", wanted)
    assert not judge("reddish", wanted)
    assert not judge("red, or maybe green", wanted)
    assert judge("anything", {})


# --- the media show what the records say -----------------------------------------------------------


def nearest_colour(rgb: np.ndarray) -> str:
    return min(COLOUR_RANGES, key=lambda name: float(np.sum((rgb - np.asarray(prototype(name))) ** 2)))


def in_region(position: str, x: float, y: float) -> bool:
    return {
        "left": x < 0.36 and 0.3 < y < 0.7,
        "right": x > 0.64 and 0.3 < y < 0.7,
        "top": y < 0.36 and 0.3 < x < 0.7,
        "bottom": y > 0.64 and 0.3 < x < 0.7,
        "centre": abs(x - 0.5) < 0.1 and abs(y - 0.5) < 0.1,
    }[position]


def test_image_shapes_have_their_colour_and_position(tmp_path):
    rng = np.random.default_rng(7)
    for number, attributes in enumerate(every_file("image")[::3]):
        path = tmp_path / f"{number}.png"
        side = int(rng.integers(128, 321))
        canvas = [None, (side, side), (side * 4 // 3, side), (side, side * 5 // 4)][number % 4]
        meta = render_image(attributes, np.random.default_rng(number), path, canvas=canvas)
        width, height = meta["canvas"]
        placement = Placement(**meta["placement"])
        alpha = coverage(placement, width, height)
        inside = alpha > 0.999
        if meta["outline"]:
            inside &= coverage(placement, width, height, outline=meta["outline"]["width"]) == 0
        pixels = np.asarray(Image.open(path), dtype=np.float64)[inside]
        assert len(pixels) > 0, attributes
        assert nearest_colour(pixels.mean(axis=0)) == attributes["colour"], (attributes, pixels.mean(axis=0))
        left, top, side = meta["region"]
        ys, xs = np.mgrid[0:height, 0:width] + 0.5
        x = ((alpha * xs).sum() / alpha.sum() - left) / side
        y = ((alpha * ys).sum() / alpha.sum() - top) / side
        assert in_region(attributes["position"], x, y), (attributes, x, y)
        rows, columns = np.nonzero(alpha > 0.01)  # wholly inside the central square, which is what
        assert columns.min() >= left and columns.max() < left + side  # the image plugin keeps
        assert rows.min() >= top and rows.max() < top + side


def test_video_shapes_move_the_named_way(tmp_path):
    for number, motion in enumerate(ATTRIBUTES["video"]["motion"] * 2):
        attributes = {"shape": ("circle", "star")[number // 5], "colour": "red", "motion": motion}
        path = tmp_path / f"{number}.mp4"
        render_video(attributes, np.random.default_rng(number), path)
        with av.open(str(path)) as container:
            frames = [
                frame.to_ndarray(format="rgb24").astype(np.int16) for frame in container.decode(video=0)
            ]
        centres = []
        for frame in (frames[0], frames[-1]):
            coloured = (frame.max(axis=2) - frame.min(axis=2)) > 70  # backgrounds are grey, red is not
            ys, xs = np.nonzero(coloured)
            centres.append((xs.mean(), ys.mean()))
        dx, dy = np.subtract(centres[1], centres[0])
        expected = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1), "still": (0, 0)}[motion]
        if motion == "still":
            assert abs(dx) < 1.5 and abs(dy) < 1.5, (motion, dx, dy)
        else:
            travelled = expected[0] * dx + expected[1] * dy
            assert 0.4 * 96 < travelled < 0.62 * 96, (motion, dx, dy)
            assert abs(expected[1] * dx + expected[0] * dy) < 1.5


def test_depth_objects_are_near_or_far(tmp_path):
    for number in range(8):
        distance = ("near", "far")[number % 2]
        meta = render_depth({"distance": distance}, np.random.default_rng(number), tmp_path / "d.png")
        depth = np.asarray(Image.open(tmp_path / "d.png")).astype(np.float64)
        inside = coverage(Placement(**meta["placement"]), *meta["canvas"]) >= 0.5
        measured = depth[inside & (depth > 0)]
        wall = depth[~inside & (depth > 0)]
        assert (np.median(measured) < 1600) if distance == "near" else (2900 < np.median(measured) < 4700)
        assert np.median(wall) > 5000
        assert (depth == 0).mean() <= 0.035


def test_thermal_objects_are_hot_or_cold(tmp_path):
    for number in range(8):
        temperature = ("hot", "cold")[number % 2]
        meta = render_thermal({"temperature": temperature}, np.random.default_rng(number), tmp_path / "t.png")
        grey = np.asarray(Image.open(tmp_path / "t.png")).astype(np.float64)
        alpha = coverage(Placement(**meta["placement"]), *meta["canvas"])
        contrast = grey[alpha > 0.99].mean() - grey[alpha == 0].mean()
        assert contrast > 40 if temperature == "hot" else contrast < -40, (temperature, contrast)


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as file:
        return np.frombuffer(file.readframes(file.getnframes()), dtype="<i2").astype(np.float64) / 32768


def peak_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)[np.argmax(spectrum)])


def test_tones_have_their_pitch_and_pattern(tmp_path):
    path = tmp_path / "a.wav"
    for number, (pitch, pattern) in enumerate(
        itertools.product(("low", "high"), ATTRIBUTES["audio"]["pattern"])
    ):
        for seed in range(3):
            render_audio({"pitch": pitch, "pattern": pattern}, np.random.default_rng([number, seed]), path)
            samples = read_wav(path)
            if pattern in ("steady", "beeping"):
                assert peak_hz(samples) > 1000 if pitch == "high" else peak_hz(samples) < 600
            half = SAMPLE_RATE // 2
            start, end = peak_hz(samples[200 : 200 + half]), peak_hz(samples[-200 - half : -200])
            assert (end > start * 1.3) if pattern == "rising" else True
            assert (end < start / 1.3) if pattern == "falling" else True
            assert (0.8 < end / start < 1.25) if pattern in ("steady", "beeping") else True
            assert max(start, end) < 600 if pitch == "low" else min(start, end) > 650
            blocks = samples[: len(samples) // 160 * 160].reshape(-1, 160)[5:-5]  # 10 ms, no fades
            loudness = np.sqrt((blocks**2).mean(axis=1))
            quiet_to_loud = np.percentile(loudness, 10) / np.percentile(loudness, 90)
            assert quiet_to_loud < 0.3 if pattern == "beeping" else quiet_to_loud > 0.7, (
                pattern,
                quiet_to_loud,
            )


def test_imu_recordings_show_the_activity(tmp_path):
    path = tmp_path / "m.npy"
    stats: dict[str, list[float]] = {activity: [] for activity in ATTRIBUTES["imu"]["activity"]}
    for activity in stats:
        for seed in range(4):
            render_imu({"activity": activity}, np.random.default_rng(seed), path)
            recording = np.load(path)
            acc, gyro = recording[:3], recording[3:]
            gravity = acc.mean(axis=1)
            spin = float(np.linalg.norm(gyro, axis=0).mean())
            if activity == "spinning":  # gravity plus a centripetal pull, turning fast
                assert 9.8 < np.linalg.norm(gravity) < 10.5 and spin > 2.5
                continue
            assert 9.3 < np.linalg.norm(gravity) < 10.3
            assert np.degrees(np.arccos(gravity[2] / np.linalg.norm(gravity))) < 26
            assert spin < 2.2
            if activity == "still":
                assert acc.var(axis=1).max() < 0.01 and spin < 0.1
            stats[activity].append(float(acc.std(axis=1).sum()))
    assert max(stats["walking"]) < min(stats["running"])  # spinning is left out above
    assert max(stats["still"]) < min(stats["walking"])


# --- the command and the examples -----------------------------------------------------------------


def test_demo_data_command_writes_and_refuses_to_clobber(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo-data", str(out), "--n", "3", "--modality", "image"]) == 0
    assert sorted(p.name for p in (out / "image").iterdir()) == ["00000.png", "00001.png", "00002.png"]
    assert len((out / "conversations.jsonl").read_text().splitlines()) == 3
    assert json.loads((out / "world.json").read_text())["modalities"] == ["image"]
    assert "wrote 3 files, 3 records" in capsys.readouterr().out

    assert main(["demo-data", str(out), "--n", "3", "--modality", "image"]) == 2
    error = capsys.readouterr().err
    assert "is not empty" in error and "--overwrite" in error and len(error.strip().splitlines()) == 1

    (out / "notes.txt").write_text("mine")
    assert main(["demo-data", str(out), "--n", "2", "--modality", "imu", "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["conversations.jsonl", "imu", "notes.txt", "world.json"]

    assert main(["demo-data", str(tmp_path / "x"), "--modality", "smell"]) == 2
    error = capsys.readouterr().err
    assert "smell" in error and "image" in error and "imu" in error


def test_examples_are_written_and_load_through_their_plugins(tmp_path):
    written = write_examples(tmp_path)
    assert [path.name for path in written] == [example.name for example in EXAMPLES]
    assert {path.name for path in written} == {
        "red_circle.png", "blue_square_left.png", "green_triangle_moving_right.mp4",
        "yellow_star_still.mp4", "high_beeping_tone.wav", "low_rising_tone.wav", "near_object_depth.png",
        "hot_object_thermal.png", "cold_object_thermal.png", "running_imu.npy", "spinning_imu.npy",
    }  # fmt: skip
    registry = load_registry()
    for example, path in zip(EXAMPLES, written, strict=True):
        spec = registry.modalities[example.modality]
        assert tuple(spec.preprocess(spec.loader(path)).shape) == EXPECTED_SHAPES[example.modality]
    readme = (tmp_path / "README.md").read_text()
    assert all(example.name in readme for example in EXAMPLES)
    assert "python -m anymodal.demo.examples examples/" in readme
    red = np.asarray(Image.open(tmp_path / "red_circle.png"))
    assert tuple(red[0, 0]) == (255, 255, 255) and tuple(red[128, 128]) == (255, 0, 0)
    again = tmp_path / "again"
    write_examples(again)
    assert all((again / path.name).read_bytes() == path.read_bytes() for path in written)
