"""Audio captioning, as the DCASE automated audio captioning task evaluates it: one caption per
clip, asked for in :data:`PROMPT`, scored against the clip's human captions with the COCO caption
metrics, on two public datasets:

* Clotho v2 (Drossos et al., 2020; zenodo.org/records/4783391, v2.1): ``clotho_captions_<split>.csv``
  with the header ``file_name,caption_1,caption_2,caption_3,caption_4,caption_5`` (one clip a row,
  five captions each), its audio unpacked from ``clotho_audio_<split>.7z`` into ``<split>/`` beside
  it; the splits are ``development``, ``validation`` and ``evaluation`` (the one scored, as in DCASE).
* AudioCaps (Kim et al., 2019; github.com/cdjkim/audiocaps, ``dataset/{train,val,test}.csv``, as
  also ``dataset2.0/``): the header ``audiocap_id,youtube_id,start_time,caption``, one caption a row,
  a clip being a ``youtube_id`` with its ``start_time`` (whole seconds), five rows per clip in val and
  test (not together: the rows of a clip are gathered from the whole file). The audio is not
  distributed: each user cuts the 10 s clips from YouTube, so the reader looks, in ``<split>/``
  beside the CSV (else ``audio_32000Hz/<split>/``, else beside it), for the names the common
  download tools write: ``<youtube_id>_<start_time>`` (Labbeti/aac-datasets), ``<youtube_id>`` or
  ``Y<youtube_id>`` (AudioSet style) and ``<audiocap_id>`` of any of the clip's rows
  (MorenoLaQuatra/audiocaps-download), each with one of :data:`AUDIO_SUFFIXES`. A clip whose file is
  not there (its video is gone from YouTube, as some 10% are) is kept, as
  ``<youtube_id>_<start_time>.wav`` in that folder: the run fails to load it, lists it in
  ``metrics.json`` and scores the others. No clip found at all is an error.

Scoring is that of the DCASE evaluation, ``eval_metrics.py`` of
github.com/audio-captioning/caption-evaluation-tools (also in the Clotho baseline,
audio-captioning/dcase-2020-baseline), which hands the captions to its copy of the COCO caption
evaluation (``coco_caption/pycocoevalcap/eval.py``, ``COCOEvalCap.evaluate``); here the same code
from the ``pycocoevalcap`` package (1.2), called the same way:

1. the candidates and the references go in as written, nothing lowercased or stripped first; each
   clip is one key (the tool's running integer ``audio_id``), its references a list of them all and
   its candidate a list of one;
2. both are tokenized by ``PTBTokenizer`` (Stanford CoreNLP 3.4.1's, ``-preserveLines -lowerCase``,
   a line break in a caption first made a space), the references in one call and the candidates in
   another, and the tokens that are punctuation (``.`` ``,`` ``?`` ``!`` ``:`` ``;`` ``-`` ``--``
   ``...`` quotes and ``-LRB-`` style brackets, compared after lowercasing, so a bracket's
   ``-lrb-`` stays) dropped;
3. ``Bleu(4)``, ``Meteor()`` (Meteor 1.5, ``-l en -norm``), ``Rouge()`` and ``Cider()`` score the
   tokenized captions: BLEU-1..4 over the corpus (clipped n-gram counts, the brevity penalty from the
   closest reference length), METEOR over the corpus, ROUGE-L the mean over clips of the LCS
   F-measure against the best reference (beta 1.2), CIDEr-D (``Cider`` is CIDEr-D: sigma 6, clipped
   counts, ×10) the mean over clips, with document frequencies from the references of the clips
   scored (so a part of a split is not comparable with the whole).

The tool also runs SPICE (which needs Stanford CoreNLP downloaded) and reports SPIDEr, the mean of
CIDEr and SPICE; both are left out here (SPICE-free), and no other aggregate is put in their place.
One deviation: Java's tokenizer also ends a line at ``\\r``, ``\\v``, ``\\f``, U+2028 and U+2029,
which the official code does not turn into spaces, so a reply holding one would shift every later
caption onto the wrong clip; here they become spaces too, as ``\\n`` does there.

The model is asked :data:`PROMPT` about each clip (the audio goes first). Audio LLMs ask for a
caption in a short instruction ("Generate the caption in English:" for Qwen-Audio's base models,
"Write an audio caption describing the sound." for LTU); asking for one sentence keeps the reply in
the form of the references (single sentences, 8 to 20 words in Clotho), which BLEU's brevity penalty
and CIDEr-D's length penalty compare it with. The metrics need ``pip install 'anymodal[eval]'``
(pycocoevalcap) and a Java runtime; reading the data needs neither.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anymodal.contract.benchmarks import BenchmarkItem, BenchmarkSpec
from anymodal.contract.errors import UsageError
from anymodal.files.text import read_text

__all__ = [
    "AUDIOCAPS",
    "CLOTHO",
    "AudioCapsClip",
    "Clip",
    "caption_scores",
    "read_audiocaps",
    "read_audiocaps_csv",
    "read_clotho",
    "read_clotho_csv",
    "score_benchmark",
]

#: What the model is asked about every clip (see the module's docstring for why).
PROMPT = "Describe the sound in one sentence."
METRICS = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider")
CLOTHO_SPLITS = ("development", "validation", "evaluation")
CLOTHO_COLUMNS = ("file_name", "caption_1", "caption_2", "caption_3", "caption_4", "caption_5")
AUDIOCAPS_SPLITS = ("train", "val", "test")
AUDIOCAPS_COLUMNS = ("audiocap_id", "youtube_id", "start_time", "caption")
#: Where AudioCaps audio is looked for, relative to the CSV's folder, in order (the first that is a
#: folder is used): ``<split>/``, aac-datasets' ``audio_32000Hz/<split>/``, the CSV's own folder.
AUDIOCAPS_AUDIO_FOLDERS = ("{split}", "audio_32000Hz/{split}", ".")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a")
#: The characters Java's PTBTokenizer ends a line at: each becomes a space before tokenizing.
_LINE_BREAKS = re.compile("[\n\r\v\f\u2028\u2029]")
_CLOTHO_DOWNLOAD = "zenodo.org/records/4783391 (Clotho v2.1)"
_AUDIOCAPS_DOWNLOAD = "github.com/cdjkim/audiocaps (dataset/)"
_JAVA_HINT = "install one, e.g. apt-get install default-jre-headless"


@dataclass(frozen=True)
class Clip:
    """One clip of a captioning dataset: its id, its audio file, its reference captions."""

    id: str
    audio: Path
    references: tuple[str, ...]


def caption_scores(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float | int]:
    """The DCASE evaluation's BLEU-1..4, METEOR, ROUGE-L and CIDEr-D of ``candidates[i]`` against
    ``references[i]`` (each a clip's captions), as its COCOEvalCap computes them, and ``count``.

    Raises UsageError when pycocoevalcap or Java is missing. Java starts three times: the tokenizer
    twice (under a second each) and METEOR once (some 5 s, loading its paraphrase table)."""
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates for {len(references)} reference lists")
    if not candidates:
        raise ValueError("no captions to score")
    if any(not refs for refs in references):
        raise ValueError("every clip needs at least one reference caption")
    bleu, meteor, rouge, cider, tokenizer = _metrics()
    gts = tokenizer.tokenize(
        {key: [{"caption": _one_line(ref)} for ref in refs] for key, refs in enumerate(references)}
    )
    res = tokenizer.tokenize({key: [{"caption": _one_line(text)}] for key, text in enumerate(candidates)})
    bleu_n, _ = bleu.compute_score(gts, res, verbose=0)  # verbose only prints
    figures = [*bleu_n, *(scorer.compute_score(gts, res)[0] for scorer in (meteor, rouge, cider))]
    return {"count": len(candidates), **{name: float(x) for name, x in zip(METRICS, figures, strict=True)}}


def score_benchmark(items: Sequence[BenchmarkItem], replies: Sequence[str]) -> dict[str, Any]:
    """Every reply scored as the caption of its item's clip, against the item's ``references``."""
    return caption_scores(replies, [[str(ref) for ref in item.fields["references"]] for item in items])


def _one_line(caption: str) -> str:
    return _LINE_BREAKS.sub(" ", caption)


def _metrics() -> tuple[Any, Any, Any, Any, Any]:
    """pycocoevalcap's BLEU, METEOR (its Java process started), ROUGE-L and CIDEr-D scorers and
    its tokenizer, or a UsageError saying what to install."""
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.meteor.meteor import Meteor
        from pycocoevalcap.rouge.rouge import Rouge
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    except ImportError:
        raise UsageError(
            "captioning metrics need pycocoevalcap, which is not installed",
            hint="pip install 'anymodal[eval]'",
        ) from None
    if shutil.which("java") is None:
        raise UsageError(
            "captioning metrics need a Java runtime (java on the PATH): pycocoevalcap's tokenizer and "
            "METEOR run on it",
            hint=_JAVA_HINT,
        )
    return Bleu(4), Meteor(), Rouge(), Cider(), PTBTokenizer()


def _read_rows(path: Path, columns: Sequence[str], what: str) -> list[tuple[int, dict[str, str]]]:
    """``(line, row)`` for every row of the CSV file ``path`` (``line`` the row's last line in the
    file), once its header is checked to hold ``columns`` and each row to have as many fields."""
    reader = csv.reader(io.StringIO(read_text(path, what, "a UTF-8 CSV file", newline="")))
    try:
        header = _header(path, next(reader, None), columns, what)
        rows = [(reader.line_num, _row(path, reader.line_num, header, record)) for record in reader if record]
    except csv.Error as error:
        raise UsageError(f"{path}, line {reader.line_num}: not CSV ({error})") from None
    if not rows:
        raise UsageError(f"{path}: no clips (only a header)")
    return rows


def _header(path: Path, header: list[str] | None, columns: Sequence[str], what: str) -> list[str]:
    """The CSV's header, checked to name every one of ``columns``."""
    hint = f"{what}'s header is {','.join(columns)}"
    if not header:
        raise UsageError(f"{path}: the file is empty (no header line)", hint=hint)
    missing = [name for name in columns if name not in header]
    if missing:
        raise UsageError(f"{path}: the header has no {', '.join(missing)} column", hint=hint)
    return header


def _row(path: Path, line: int, header: list[str], record: list[str]) -> dict[str, str]:
    if len(record) != len(header):
        raise UsageError(f"{path}, line {line}: {len(record)} fields, the header has {len(header)}")
    return dict(zip(header, record, strict=True))


def _text(path: Path, line: int, row: dict[str, str], column: str) -> str:
    """The row's ``column``, which must not be blank; as written (the captions are scored so)."""
    value = row[column]
    if not value.strip():
        raise UsageError(f"{path}, line {line}: {column} is empty")
    return value


def _data_file(path: Path, pattern: str, splits: Sequence[str], split: str, download: str) -> Path:
    """The CSV of ``split`` in the folder ``path`` (``pattern`` names it), or ``path`` itself when it
    is such a CSV, checked to exist."""
    if split not in splits:
        raise ValueError(f"unknown split {split!r}: the splits are {', '.join(splits)}")
    if path.is_file():
        if path.name not in {pattern.format(split=name) for name in splits}:
            raise UsageError(
                f"{path}: not a file name of the dataset's (expected {pattern.format(split=split)})",
                hint="give the folder holding it, with the published file names",
            )
        return path
    file = path / pattern.format(split=split)
    if not path.is_dir():
        raise UsageError(f"{path}: no such folder", hint=f"get the data from {download}")
    if not file.is_file():
        raise UsageError(f"{path}: no {file.name} in it", hint=f"get it from {download}")
    return file


def read_clotho_csv(path: Path, audio: Path) -> list[Clip]:
    """Every clip of a Clotho captions CSV, its audio ``audio / file_name``; one UsageError naming
    the file and line for a bad row or a clip listed twice."""
    lines: dict[str, int] = {}
    clips = []
    for line, row in _read_rows(path, CLOTHO_COLUMNS, "a Clotho captions file"):
        name = _text(path, line, row, "file_name")
        if name in lines:
            raise UsageError(f"{path}, line {line}: clip {name!r} again (first on line {lines[name]})")
        lines[name] = line
        references = tuple(_text(path, line, row, column) for column in CLOTHO_COLUMNS[1:])
        clips.append(Clip(name, audio / name, references))
    return clips


def read_clotho(path: Path, split: str = "evaluation") -> list[BenchmarkItem]:
    """The clips of Clotho's ``split`` under ``path``: the folder holding
    ``clotho_captions_<split>.csv`` and the ``<split>/`` audio folder (or that CSV itself)."""
    file = _data_file(Path(path), "clotho_captions_{split}.csv", CLOTHO_SPLITS, split, _CLOTHO_DOWNLOAD)
    split = file.stem.removeprefix("clotho_captions_")
    audio = file.parent / split
    if not audio.is_dir():
        raise UsageError(
            f"{file.parent}: no {split}/ audio folder beside {file.name}",
            hint=f"unpack clotho_audio_{split}.7z from {_CLOTHO_DOWNLOAD} there (it holds {split}/)",
        )
    return _items(read_clotho_csv(file, audio))


@dataclass(frozen=True)
class AudioCapsClip:
    """One clip of an AudioCaps CSV: its video and start, and the ids and captions of its rows."""

    youtube_id: str
    start_time: str  # whole seconds, as written
    audiocap_ids: tuple[str, ...]
    references: tuple[str, ...]

    @property
    def id(self) -> str:
        """``<youtube_id>_<start_time>``, the name aac-datasets gives its audio file."""
        return f"{self.youtube_id}_{self.start_time}"


def read_audiocaps_csv(path: Path) -> list[AudioCapsClip]:
    """The clips of an AudioCaps CSV (one caption a row) in the order of their first row, each with
    the captions and ids of all its rows; one UsageError naming the file and line for a bad row."""
    starts: dict[str, tuple[str, int]] = {}  # youtube_id: its start_time and the line giving it
    rows: dict[str, list[tuple[str, str]]] = {}  # youtube_id: its (audiocap_id, caption)s
    ids: dict[str, int] = {}
    for line, row in _read_rows(path, AUDIOCAPS_COLUMNS, "an AudioCaps captions file"):
        audiocap_id = _text(path, line, row, "audiocap_id")
        youtube_id = _text(path, line, row, "youtube_id")
        start = row["start_time"]
        if not start.isdigit():
            raise UsageError(f"{path}, line {line}: start_time must be whole seconds, got {start!r}")
        caption = _text(path, line, row, "caption")
        if audiocap_id in ids:
            raise UsageError(
                f"{path}, line {line}: audiocap_id {audiocap_id} again (first on line {ids[audiocap_id]})"
            )
        ids[audiocap_id] = line
        first, first_line = starts.setdefault(youtube_id, (start, line))
        if start != first:
            raise UsageError(
                f"{path}, line {line}: clip {youtube_id} starts at {start}, "
                f"but at {first} on line {first_line}",
                hint="AudioCaps has one clip per youtube_id; keep the published file",
            )
        rows.setdefault(youtube_id, []).append((audiocap_id, caption))
    return [
        AudioCapsClip(
            youtube_id,
            starts[youtube_id][0],
            audiocap_ids=tuple(audiocap_id for audiocap_id, _ in pairs),
            references=tuple(caption for _, caption in pairs),
        )
        for youtube_id, pairs in rows.items()
    ]


def read_audiocaps(path: Path, split: str = "test") -> list[BenchmarkItem]:
    """The clips of AudioCaps's ``split`` under ``path``: the folder holding ``<split>.csv`` and the
    audio the user downloaded (where and under which names: the module's docstring), or that CSV."""
    file = _data_file(Path(path), "{split}.csv", AUDIOCAPS_SPLITS, split, _AUDIOCAPS_DOWNLOAD)
    split = file.stem
    folder = next(
        candidate
        for relative in AUDIOCAPS_AUDIO_FOLDERS
        if (candidate := file.parent / relative.format(split=split)).is_dir()
    )
    present = set(os.listdir(folder))
    clips = []
    found = 0
    for clip in read_audiocaps_csv(file):
        stems = (clip.id, clip.youtube_id, f"Y{clip.youtube_id}", *clip.audiocap_ids)
        names = [stem + suffix for stem in stems for suffix in AUDIO_SUFFIXES if stem + suffix in present]
        found += bool(names)
        audio = folder / (names[0] if names else clip.id + AUDIO_SUFFIXES[0])
        clips.append(Clip(clip.id, audio, clip.references))
    if not found:
        raise UsageError(
            f"{folder}: no audio of any of the {len(clips)} clips of {file.name} (looked for "
            f"<youtube_id>_<start_time>, <youtube_id>, Y<youtube_id> or <audiocap_id> with "
            f"{', '.join(AUDIO_SUFFIXES)})",
            hint=f"download the clips (AudioCaps does not distribute audio) into {file.parent / split}",
        )
    return _items(clips)


def _items(clips: Sequence[Clip]) -> list[BenchmarkItem]:
    return [
        BenchmarkItem(
            id=clip.id,
            question=PROMPT,
            media=(("audio", clip.audio),),
            fields={"references": list(clip.references)},
        )
        for clip in clips
    ]


CLOTHO = BenchmarkSpec(
    name="clotho",
    read=read_clotho,
    score=score_benchmark,
    description="Clotho v2 audio captioning (evaluation split): BLEU-1..4, METEOR, ROUGE-L, CIDEr-D "
    "as the DCASE evaluation computes them",
    data=f"a folder with clotho_captions_evaluation.csv and the evaluation/ audio from {_CLOTHO_DOWNLOAD}",
    max_new_tokens=64,
)

AUDIOCAPS = BenchmarkSpec(
    name="audiocaps",
    read=read_audiocaps,
    score=score_benchmark,
    description="AudioCaps audio captioning (test split): BLEU-1..4, METEOR, ROUGE-L, CIDEr-D as the "
    "DCASE evaluation computes them",
    data=f"a folder with test.csv from {_AUDIOCAPS_DOWNLOAD} and the clips you downloaded in test/, "
    "named <youtube_id>_<start_time>.wav (or .flac, ...)",
    max_new_tokens=64,
)
