"""Clotho and AudioCaps captioning: the files read as published, the scores as the DCASE evaluation
(caption-evaluation-tools' eval_metrics.py, on pycocoevalcap) computes them."""

from __future__ import annotations

import csv
import importlib.util
import math
import os
import re
import shutil
import sys
import types
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from anymodal.contract.errors import UsageError
from anymodal.eval.benchmark import read_items
from anymodal.eval.benchmarks.captioning import (
    AUDIOCAPS,
    CLOTHO,
    PROMPT,
    caption_scores,
    read_audiocaps,
    read_clotho,
    score_benchmark,
)

CLOTHO_HEADER = ["file_name", "caption_1", "caption_2", "caption_3", "caption_4", "caption_5"]
AUDIOCAPS_HEADER = ["audiocap_id", "youtube_id", "start_time", "caption"]

# Four clips, not in file-name order (the official tool sorts them; the scores cannot depend on it).
CLIPS = {
    "engine.wav": ["A car engine idles and then revs up."] * 5,
    "rain.wav": [
        "Rain falls on a tin roof.",
        "Heavy rain is falling on the roof.",
        "Rain pours down onto a metal roof.",
        "Raindrops hit a roof steadily.",
        "Steady rain on a roof.",
    ],
    "dog barking.wav": [
        "A dog barks loudly.",
        "A dog is barking.",
        "Dogs bark in the distance.",
        "A dog barks at a passing car.",
        "Loud barking from a dog.",
    ],
    "birds.wav": [
        "Birds chirp in the trees.",
        "Several birds are singing.",
        "Birds sing while leaves rustle.",
        "Many birds chirping outside.",
        "Chirping birds in a forest.",
    ],
}
REPLIES = {
    "engine.wav": "A car engine idles and then revs up.",  # identical to all its references
    # U+2028 ends a line for Java's tokenizer: made a space, as the official code makes "\n" one
    "rain.wav": "Rain on the roof\u2028and wind.",
    "dog barking.wav": "A dog barks, twice.",
    "birds.wav": "Birds are\nsinging.",
}


def write_csv(path: Path, rows: Sequence[Sequence[str]], newline: str = "\n") -> Path:
    with path.open("w", encoding="utf-8", newline="") as file:
        csv.writer(file, lineterminator=newline).writerows(rows)
    return path


def clotho_folder(root: Path, split: str = "evaluation", clips: dict[str, list[str]] = CLIPS) -> Path:
    (root / split).mkdir(parents=True)
    rows = [CLOTHO_HEADER, *([name, *captions] for name, captions in clips.items())]
    write_csv(root / f"clotho_captions_{split}.csv", rows)
    return root


# --- the scores ----------------------------------------------------------------------------------


def require_metrics() -> None:
    """Skip unless pycocoevalcap and Java are there; fail instead when CI asks for them."""
    missing = [
        what
        for what, there in (
            ("pycocoevalcap", importlib.util.find_spec("pycocoevalcap") is not None),
            ("java", shutil.which("java") is not None),
        )
        if not there
    ]
    if missing:
        message = f"captioning metrics need {' and '.join(missing)}"
        if os.environ.get("ANYMODAL_REQUIRE_CAPTION_METRICS") == "1":
            pytest.fail(f"{message}, and ANYMODAL_REQUIRE_CAPTION_METRICS=1 requires them")
        pytest.skip(message)


def official_scores(replies: dict[str, str], references: dict[str, list[str]]) -> dict[str, float]:
    """caption-evaluation-tools' evaluate_metrics, SPICE left out, on pycocoevalcap: the files sorted
    by name and numbered, the annotations as its COCO object holds them (dicts with a "caption"),
    the tokenizer run on the references and then on the predictions, each scorer as COCOEvalCap
    calls it."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    names = sorted(replies)
    gts: dict[int, list[dict[str, Any]]] = {}
    for audio_id, name in enumerate(names):
        gts[audio_id] = [{"audio_id": audio_id, "caption": caption} for caption in references[name]]
    res = {
        audio_id: [{"audio_id": audio_id, "caption": replies[name]}] for audio_id, name in enumerate(names)
    }
    tokenizer = PTBTokenizer()
    gts, res = tokenizer.tokenize(gts), tokenizer.tokenize(res)
    bleu, _ = Bleu(4).compute_score(gts, res)
    scores = {f"bleu_{n}": bleu[n - 1] for n in range(1, 5)}
    for name, scorer in (("meteor", Meteor()), ("rouge_l", Rouge()), ("cider", Cider())):
        scores[name] = float(scorer.compute_score(gts, res)[0])
    return scores


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, float]]:
    """The fixture scored by the Clotho benchmark and by the official code, side by side (each
    starts the tokenizer twice and METEOR once, which takes some 5 s to load)."""
    require_metrics()
    items = read_items(CLOTHO, clotho_folder(tmp_path_factory.mktemp("clotho")))
    replies = [REPLIES[item.id] for item in items]
    official_replies = {name: reply.replace("\u2028", "\n") for name, reply in REPLIES.items()}
    with ThreadPoolExecutor(2) as pool:
        ours = pool.submit(score_benchmark, items, replies)
        official = pool.submit(official_scores, official_replies, CLIPS)
        return ours.result(), official.result()


@pytest.mark.slow  # with the fixture, some 8 s on 2 cores: METEOR alone takes 5 s to load
def test_the_scores_are_the_official_ones(scored: tuple[dict[str, Any], dict[str, float]]) -> None:
    ours, official = scored
    assert set(ours) == {"count", *official} and ours["count"] == 4
    for name, value in official.items():
        assert ours[name] == pytest.approx(value, rel=1e-12, abs=1e-15), name
        assert type(ours[name]) is float


@pytest.mark.slow
def test_bleu_1_and_rouge_l_match_a_hand_count(scored: tuple[dict[str, Any], dict[str, float]]) -> None:
    ours, _ = scored
    # Tokenized (lowercased, punctuation dropped): "a dog barks twice" matches a, dog, barks (3 of
    # 4), closest reference length 4; "rain on the roof and wind" matches rain, on, the, roof (4 of
    # 6), closest length 6; "birds are singing" matches all 3, closest length 4 ("several birds are
    # singing"); the engine's reply matches all 8 of its references' 8. BLEU-1 = 18/21 with the
    # brevity penalty exp(1 - 22/21).
    assert ours["bleu_1"] == pytest.approx(18 / 21 * math.exp(1 - 22 / 21), rel=1e-9)

    # ROUGE-L: per clip F = (1 + b²)PR / (R + b²P), b = 1.2, P and R each the best over the
    # references of LCS / candidate length and LCS / reference length.
    def f(p: float, r: float) -> float:
        return (1 + 1.2**2) * p * r / (r + 1.2**2 * p)

    dog = f(3 / 4, 3 / 4)  # "a dog barks" of "a dog barks loudly"
    rain = f(4 / 6, 3 / 5)  # "rain on the roof" of ref 2; "rain on roof" is 3 of ref 5's 5
    birds = f(3 / 3, 3 / 4)  # all of it in "several birds are singing"
    engine = f(1, 1)  # identical: 1
    assert ours["rouge_l"] == pytest.approx((dog + rain + birds + engine) / 4, rel=1e-12)


def test_without_pycocoevalcap_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "",
        ".bleu.bleu",
        ".cider.cider",
        ".meteor.meteor",
        ".rouge.rouge",
        ".tokenizer.ptbtokenizer",
    ):
        monkeypatch.setitem(sys.modules, f"pycocoevalcap{name}", None)  # an import of it fails
    with pytest.raises(UsageError, match=re.escape("pip install 'anymodal[eval]'")) as caught:
        caption_scores(["a dog barks"], [["a dog barks"]])
    assert "pycocoevalcap" in str(caught.value)


def test_without_java_the_error_says_a_runtime_is_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("bleu.bleu", "cider.cider", "meteor.meteor", "rouge.rouge", "tokenizer.ptbtokenizer"):
        stub = types.ModuleType(f"pycocoevalcap.{name}")
        for scorer in ("Bleu", "Cider", "Meteor", "Rouge", "PTBTokenizer"):
            setattr(stub, scorer, object)
        monkeypatch.setitem(sys.modules, f"pycocoevalcap.{name}", stub)
        monkeypatch.setitem(sys.modules, f"pycocoevalcap.{name.split('.')[0]}", types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "pycocoevalcap", types.ModuleType("pycocoevalcap"))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(UsageError, match="need a Java runtime") as caught:
        caption_scores(["a dog barks"], [["a dog barks"]])
    assert "apt-get install default-jre-headless" in str(caught.value)


def test_candidates_and_references_must_pair_up() -> None:
    with pytest.raises(ValueError, match="2 candidates for 1 reference lists"):
        caption_scores(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="no captions"):
        caption_scores([], [])
    with pytest.raises(ValueError, match="at least one reference"):
        caption_scores(["a"], [[]])


# --- Clotho --------------------------------------------------------------------------------------


def test_clotho_is_read_as_published(tmp_path: Path) -> None:
    clips = {"Santa Motor.wav": ["A car, then a horn.", *["An engine hums."] * 4], **CLIPS}
    root = clotho_folder(tmp_path, clips=clips)
    items = read_items(CLOTHO, root)
    assert [item.id for item in items] == list(clips)
    first = items[0]
    assert first.question == PROMPT
    assert first.media == (("audio", root / "evaluation" / "Santa Motor.wav"),)
    assert first.fields == {"references": ["A car, then a horn.", *["An engine hums."] * 4]}


def test_clotho_reads_another_split_or_its_csv_given_itself(tmp_path: Path) -> None:
    root = clotho_folder(tmp_path, split="development")
    assert len(read_clotho(root, split="development")) == 4
    items = read_clotho(root / "clotho_captions_development.csv")
    assert items[0].media == (("audio", root / "development" / "engine.wav"),)
    with pytest.raises(ValueError, match="unknown split 'test'"):
        read_clotho(root, split="test")


def test_clotho_without_its_files_is_an_error_saying_where_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such folder"):
        read_clotho(tmp_path / "nowhere")
    with pytest.raises(UsageError, match=re.escape("no clotho_captions_evaluation.csv in it")) as caught:
        read_clotho(tmp_path)
    assert "zenodo.org/records/4783391" in str(caught.value)
    write_csv(tmp_path / "clotho_captions_evaluation.csv", [CLOTHO_HEADER, ["a.wav", *"abcde"]])
    with pytest.raises(UsageError, match=re.escape("no evaluation/ audio folder")) as caught:
        read_clotho(tmp_path)
    assert "clotho_audio_evaluation.7z" in str(caught.value)
    with pytest.raises(UsageError, match="not a file name of the dataset's"):
        read_clotho(write_csv(tmp_path / "captions.csv", [CLOTHO_HEADER]))


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "the file is empty (no header line)"),
        ([CLOTHO_HEADER], "no clips (only a header)"),
        ([CLOTHO_HEADER[:4], ["a.wav", "x", "y", "z"]], "the header has no caption_4, caption_5 column"),
        ([CLOTHO_HEADER, ["a.wav", "x", " ", "x", "x", "x"]], "line 2: caption_2 is empty"),
        ([CLOTHO_HEADER, ["", *"xxxxx"]], "line 2: file_name is empty"),
        ([CLOTHO_HEADER, ["a.wav", "x", "x"]], "line 2: 3 fields, the header has 6"),
        (
            [CLOTHO_HEADER, ["a.wav", *"vwxyz"], ["b.wav", *"vwxyz"], ["a.wav", *"vwxyz"]],
            "line 4: clip 'a.wav' again (first on line 2)",
        ),
    ],
)
def test_a_bad_clotho_csv_is_one_error_naming_file_and_line(
    tmp_path: Path, rows: list[list[str]], message: str
) -> None:
    path = write_csv(tmp_path / "clotho_captions_evaluation.csv", rows)
    (tmp_path / "evaluation").mkdir()
    with pytest.raises(UsageError, match=re.escape(message)) as caught:
        read_clotho(tmp_path)
    assert str(path) in str(caught.value)


def test_a_clotho_csv_that_is_not_utf8_or_not_csv_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "evaluation").mkdir()
    path = tmp_path / "clotho_captions_evaluation.csv"
    path.write_bytes(b"file_name,caption_1\n\xff\xfe,x\n")
    with pytest.raises(UsageError, match="not UTF-8 text"):
        read_clotho(tmp_path)
    # an unclosed quote runs on past the csv module's field size limit
    path.write_text(",".join(CLOTHO_HEADER) + '\na.wav,"' + "x" * 200_000 + "\n", encoding="utf-8")
    with pytest.raises(UsageError, match="line 2: not CSV"):
        read_clotho(tmp_path)


# --- AudioCaps -----------------------------------------------------------------------------------

# Two clips, their rows interleaved as in the published test.csv (CRLF line ends, as there).
AUDIOCAPS_ROWS = [
    AUDIOCAPS_HEADER,
    ["103549", "7fmOlUlwoNg", "20", "Constant rattling noise and sharp vibrations"],
    ["103548", "-6BJ455B1aA", "0", "A rocket flies by, followed by a loud explosion"],
    ["103550", "7fmOlUlwoNg", "20", "Vibrations and rattling with people speaking"],
    ["103551", "-6BJ455B1aA", "0", "An explosion and fire crackling"],
]


def audiocaps_folder(
    root: Path, audio: Sequence[str], rows: Sequence[Sequence[str]] = AUDIOCAPS_ROWS
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_csv(root / "test.csv", rows, newline="\r\n")
    for name in audio:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    return root


def test_audiocaps_is_read_as_published(tmp_path: Path) -> None:
    root = audiocaps_folder(tmp_path, ["test/7fmOlUlwoNg_20.wav", "test/-6BJ455B1aA_0.wav"])
    items = read_items(AUDIOCAPS, root)
    assert [item.id for item in items] == ["7fmOlUlwoNg_20", "-6BJ455B1aA_0"]
    assert items[0].question == PROMPT
    assert items[0].media == (("audio", root / "test" / "7fmOlUlwoNg_20.wav"),)
    assert items[1].fields == {
        "references": ["A rocket flies by, followed by a loud explosion", "An explosion and fire crackling"]
    }


@pytest.mark.parametrize(
    "name",
    [
        "test/7fmOlUlwoNg_20.flac",  # aac-datasets, another format
        "audio_32000Hz/test/7fmOlUlwoNg_20.flac",  # aac-datasets' own layout
        "test/7fmOlUlwoNg.wav",
        "test/Y7fmOlUlwoNg.mp3",  # AudioSet style
        "test/103550.ogg",  # audiocaps-download: the clip's second row's audiocap_id
        "7fmOlUlwoNg_20.m4a",  # beside the CSV
    ],
)
def test_audiocaps_audio_is_found_under_the_download_tools_names(tmp_path: Path, name: str) -> None:
    root = audiocaps_folder(tmp_path, [name])
    assert read_audiocaps(root)[0].media == (("audio", root / name),)


def test_an_audiocaps_clip_without_audio_is_kept_for_the_run_to_report(tmp_path: Path) -> None:
    root = audiocaps_folder(tmp_path, ["test/7fmOlUlwoNg_20.flac"])
    assert read_audiocaps(root)[1].media == (("audio", root / "test" / "-6BJ455B1aA_0.wav"),)


def test_audiocaps_with_no_audio_at_all_is_an_error(tmp_path: Path) -> None:
    root = audiocaps_folder(tmp_path, ["test/unrelated.wav"])
    with pytest.raises(UsageError, match=re.escape("no audio of any of the 2 clips of test.csv")) as caught:
        read_audiocaps(root)
    assert "AudioCaps does not distribute audio" in str(caught.value)


def test_audiocaps_reads_another_split_or_its_csv_given_itself(tmp_path: Path) -> None:
    root = audiocaps_folder(tmp_path, ["val/7fmOlUlwoNg_20.wav"])
    (root / "test.csv").rename(root / "val.csv")
    assert len(read_audiocaps(root, split="val")) == 2
    assert read_audiocaps(root / "val.csv")[0].media == (("audio", root / "val" / "7fmOlUlwoNg_20.wav"),)
    with pytest.raises(UsageError, match=re.escape("no test.csv in it")) as caught:
        read_audiocaps(root)
    assert "github.com/cdjkim/audiocaps" in str(caught.value)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            ["103552", "7fmOlUlwoNg", "30", "Rattling"],
            "line 4: clip 7fmOlUlwoNg starts at 30, but at 20 on line 2",
        ),
        (["103549", "abcdefghijk", "0", "Rattling"], "line 4: audiocap_id 103549 again (first on line 2)"),
        (["103552", "abcdefghijk", "1.5", "Rattling"], "line 4: start_time must be whole seconds, got '1.5'"),
        (["103552", "abcdefghijk", "0", ""], "line 4: caption is empty"),
        (["103552", "", "0", "Rattling"], "line 4: youtube_id is empty"),
        (["103552", "abcdefghijk", "0"], "line 4: 3 fields, the header has 4"),
    ],
)
def test_a_bad_audiocaps_row_is_one_error_naming_file_and_line(
    tmp_path: Path, row: list[str], message: str
) -> None:
    rows = [*AUDIOCAPS_ROWS[:3], row]
    root = audiocaps_folder(tmp_path, ["test/7fmOlUlwoNg_20.wav"], rows)
    with pytest.raises(UsageError, match=re.escape(message)) as caught:
        read_audiocaps(root)
    assert str(root / "test.csv") in str(caught.value)


def test_an_audiocaps_header_without_its_columns_names_them(tmp_path: Path) -> None:
    rows = [["youtube_id", "start_time", "caption"], ["7fmOlUlwoNg", "20", "Rattling"]]
    root = audiocaps_folder(tmp_path, [], rows)
    with pytest.raises(UsageError, match="the header has no audiocap_id column") as caught:
        read_audiocaps(root)
    assert "audiocap_id,youtube_id,start_time,caption" in str(caught.value)
